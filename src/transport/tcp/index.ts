export { TcpListener, createTcpListener } from './listener';
export { TcpDialer, createTcpDialer } from './dialer';
export {
  dialTcp,
  dialTimeoutMs,
  formatAddress,
  keepaliveOptions,
  localAddressOf,
  remoteAddressOf,
  type DialTcpOptions,
  type KeepaliveOptions,
} from './socket';
