/**
 * Types for wxgate-miniprogram (see index.js for the behaviour), derived
 * from WeChat's official typings (`miniprogram-api-typings`, which every
 * TypeScript mini-program project has): `request` takes wx.request's own
 * options and resolves wx.request's own success object.
 */
/// <reference types="miniprogram-api-typings" />

/** The gateway's routes, as its `[routes]` section names them. */
export interface Routes {
  /** `routes.prefix`; default `/_wxgate` (the default of the three below). */
  prefix?: string;
  /** `routes.login`; default `/login`. */
  login?: string;
  /** `routes.logout`; default `/logout`. */
  logout?: string;
  /** `routes.decrypt`; default `<prefix>/decrypt`. */
  decrypt?: string;
  /** `routes.phone`; default `<prefix>/phone`. */
  phone?: string;
  /** `routes.session`; default `<prefix>/session`. */
  session?: string;
}

export interface ClientOptions {
  /** The gateway, e.g. `https://api.example.com`. */
  baseUrl: string;
  /** The gateway's route paths, when its `[routes]` changes them. */
  routes?: Routes;
  /** Same as `routes.prefix` (kept for older callers). */
  prefix?: string;
  /** Same as `routes.login` (kept for older callers). */
  loginPath?: string;
  /** Same as `routes.logout` (kept for older callers). */
  logoutPath?: string;
  /** `session.header`; default `X-Session-Id`. */
  sessionHeader?: string;
  /** Storage key of the session id; default `wxgate_session_id`. */
  storageKey?: string;
  /** The `wx` API; the global `wx` by default. */
  wx?: WechatMiniprogram.Wx;
  /**
   * Sent with every login, for a gateway serving several mini-programs
   * (`[[apps]]`); by default `wx.getAccountInfoSync().miniProgram.appId`.
   */
  appid?: string;
}

/** The data wx.request accepts. */
export type RequestData = string | WechatMiniprogram.IAnyObject | ArrayBuffer;

/**
 * wx.request's options, `url` being a path on the gateway; the library
 * owns `success`, `fail` and `complete` (it answers with a promise).
 */
export type RequestOptions<T extends RequestData = RequestData> = Omit<
  WechatMiniprogram.RequestOption<T>,
  'success' | 'fail' | 'complete'
>;

/** wx.request's own success object. */
export type Response<T extends RequestData = RequestData> = WechatMiniprogram.RequestSuccessCallbackResult<T>;

export interface EncryptedData {
  encryptedData: string;
  iv: string;
}

export interface DecryptOptions {
  /**
   * Fetches the encrypted data; called after the login whose key will
   * decrypt it, and again after a re-login (wxgate's 401 or 409).
   */
  getData?: () => EncryptedData | Promise<EncryptedData>;
  encryptedData?: string;
  iv?: string;
}

export interface PhoneNumber {
  phoneNumber: string;
  purePhoneNumber: string;
  countryCode: string;
}

export interface SessionStatus {
  valid: boolean;
  [key: string]: unknown;
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
  /** wx.request's errMsg, for a request that failed (`network`). */
  errMsg?: string;
}

/** The header wxgate puts on every answer it makes itself (`x-wxgate-error`). */
export declare const MARK: string;

export interface Client {
  /** Logs in, or joins the login in flight; resolves the session id. */
  login(): Promise<string>;
  /** wx.request through the gateway with the session; one re-login and re-send on wxgate's 401. */
  request<T extends RequestData = RequestData>(options: RequestOptions<T>): Promise<Response<T>>;
  /** The session id, after wx.checkSession (logging in when it fails). */
  ensureFreshSessionKey(): Promise<string>;
  /** Decrypts user data with the user's current session_key. */
  decrypt<T = Record<string, unknown>>(options: DecryptOptions): Promise<T>;
  /** The phone number behind a getPhoneNumber button's code. */
  phone(code: string): Promise<PhoneNumber>;
  /** Whether the gateway still holds the user's current session_key (`routes.session`). */
  checkSession(): Promise<SessionStatus>;
  /** Ends the session at the gateway and forgets it. */
  logout(): Promise<void>;
  /** The stored session id, `''` when none. */
  sessionId(): string;
}

export declare function createClient(options: ClientOptions): Client;
