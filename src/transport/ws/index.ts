export { WsListener, createWsListener, createWssListener, forwardedClientIp, wsPath, DEFAULT_WS_PATH } from './listener';
export {
  WsDialer,
  createWsDialer,
  createWssDialer,
  wsClientHandshake,
  wsClientOptions,
  type WsClientOptions,
} from './dialer';
export { WsStream, WS_MAX_MESSAGE_BYTES, WS_MAX_SEND_BYTES } from './stream';
