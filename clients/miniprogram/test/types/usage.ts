// The library as a TypeScript mini-program uses it, checked against
// WeChat's official typings (`tsc -p test/types`, run by scripts/test):
// wx.request's own options pass, wx.request's own result comes back, and
// what wx.request would refuse is refused here too.
import { createClient, WxgateError, type RequestOptions, type Response } from '../..';

const api = createClient({
  baseUrl: 'https://api.example.com',
  wx,
  routes: { decrypt: '/gw/dec', phone: '/gw/phone', session: '/gw/session', login: '/signin', logout: '/signout' },
});

async function usage(): Promise<void> {
  const res = await api.request<{ id: number }>({
    url: '/api/orders',
    method: 'POST',
    data: { item: 1 },
    header: { 'content-type': 'application/json' },
    timeout: 3000,
    dataType: 'json',
    responseType: 'text',
    enableHttp2: true,
    enableCache: true,
    enableChunked: false,
  });
  const id: number = res.data.id;
  const cookies: string[] = res.cookies;
  const errMsg: string = res.errMsg;
  const status: number = res.statusCode;
  const bytes = await api.request<ArrayBuffer>({ url: '/file', responseType: 'arraybuffer' });
  const buffer: ArrayBuffer = bytes.data;
  // Every option of wx.request but the callbacks the library owns.
  const asWx: Omit<WechatMiniprogram.RequestOption, 'success' | 'fail' | 'complete'> = {} as RequestOptions;
  const back: RequestOptions = asWx;
  const result: WechatMiniprogram.RequestSuccessCallbackResult = {} as Response;
  for (const method of ['OPTIONS', 'GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'TRACE', 'CONNECT'] as const) {
    await api.request({ url: '/x', method });
  }
  // @ts-expect-error PATCH is not a wx.request method
  await api.request({ url: '/x', method: 'PATCH' });
  // @ts-expect-error wx.request's data is a string, an object or an ArrayBuffer
  await api.request({ url: '/x', data: 42 });
  // @ts-expect-error the library owns the callbacks
  await api.request({ url: '/x', success: () => undefined });
  const profile = await api.decrypt<{ nickName: string }>({
    getData: () => new Promise((resolve) => wx.getUserProfile({ desc: 'x', success: (r) => resolve(r) })),
  });
  const nick: string = profile.nickName;
  const phone = await api.phone('code');
  const number: string = phone.phoneNumber;
  const valid: boolean = (await api.checkSession()).valid;
  try {
    await api.login();
  } catch (e) {
    if (e instanceof WxgateError) {
      const code: string = e.code;
      const retry: number | undefined = e.retryAfter;
      void code;
      void retry;
    }
  }
  void [id, cookies, errMsg, status, buffer, back, result, nick, number, valid];
}

void usage;
