import { createContext } from "preact";
import { useContext } from "preact/hooks";
import type { Api } from "./api";
import type { Me } from "./permissions";

export interface Session {
  api: Api;
  me: Me;
  /** Route parameters of the current page (from the hash's query string). */
  params: URLSearchParams;
  navigate: (hash: string) => void;
  /** Shows a short confirmation in the status line. */
  notify: (text: string) => void;
}

export const SessionContext = createContext<Session | null>(null);

export function useSession(): Session {
  const s = useContext(SessionContext);
  if (!s) throw new Error("no session");
  return s;
}
