export * from "./denials.js";
export * from "./engine.js";
export * from "./errors.js";
export * from "./llm.js";
export * from "./scopes.js";
export * from "./store.js";
export * from "./types.js";
export * from "./validate.js";
