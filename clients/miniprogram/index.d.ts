/** Types for wxgate-miniprogram (see index.js for the behaviour). */

export interface ClientOptions {
  /** The gateway, e.g. `https://api.example.com`. */
  baseUrl: string;
  /** wxgate's `routes.prefix`; default `/_wxgate`. */
  prefix?: string;
  /** `routes.login`; default `/login`. */
  loginPath?: string;
  /** `routes.logout`; default `/logout`. */
  logoutPath?: string;
  /** `session.header`; default `X-Session-Id`. */
  sessionHeader?: string;
  /** Storage key of the session id; default `wxgate_session_id`. */
  storageKey?: string;
  /** The `wx` API; the global `wx` by default. */
  wx?: unknown;
  /**
   * Sent with every login, for a gateway serving several mini-programs
   * (`[[apps]]`); by default `wx.getAccountInfoSync().miniProgram.appId`.
   */
  appid?: string;
}

export interface RequestOptions {
  /** Path on the gateway, e.g. `/api/orders`. */
  url: string;
  method?: 'GET' | 'POST' | 'PUT' | 'DELETE' | 'PATCH' | 'HEAD' | 'OPTIONS';
  data?: unknown;
  header?: Record<string, string>;
}

export interface Response<T = unknown> {
  statusCode: number;
  data: T;
  header: Record<string, string>;
}

export interface EncryptedData {
  encryptedData: string;
  iv: string;
}

export interface DecryptOptions {
  /** Fetches the encrypted data; called after the key is fresh, and again after a re-login on 409. */
  getData?: () => EncryptedData | Promise<EncryptedData>;
  encryptedData?: string;
  iv?: string;
}

export interface PhoneNumber {
  phoneNumber: string;
  purePhoneNumber: string;
  countryCode: string;
}

export declare class WxgateError extends Error {
  /** HTTP status; 0 when the request itself failed. */
  status: number;
  /** wxgate's error code (`session_invalid`, `code_used`, `wechat_busy`, …), or `network`. */
  code: string;
  /** WeChat's errcode, when WeChat gave one. */
  errcode?: number;
  /** Seconds to wait before trying again (429 / 503). */
  retryAfter?: number;
}

export interface Client {
  /** Logs in, or joins the login in flight; resolves the session id. */
  login(): Promise<string>;
  /** wx.request through the gateway with the session; one re-login and retry on wxgate's 401. */
  request<T = unknown>(options: RequestOptions): Promise<Response<T>>;
  /** The session id, after wx.checkSession (logging in when it fails). */
  ensureFreshSessionKey(): Promise<string>;
  /** Decrypts user data with the user's current session_key. */
  decrypt<T = Record<string, unknown>>(options: DecryptOptions): Promise<T>;
  /** The phone number behind a getPhoneNumber button's code. */
  phone(code: string): Promise<PhoneNumber>;
  /** Ends the session at the gateway and forgets it. */
  logout(): Promise<void>;
  /** The stored session id, `''` when none. */
  sessionId(): string;
}

export declare function createClient(options: ClientOptions): Client;
