/** @tollgate/proxy: the OpenAI-compatible proxy. Its modules are being written (issue 12). */
export const PROXY_NAME = "tollgate";
