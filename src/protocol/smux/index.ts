/**
 * smux v1/v2 as xtaci/smux v1.5.x speaks it (spec/protocol.md §5), hand-written: no npm package
 * implements it. Public surface; the per-file modules hold the details.
 */
export { Session, type SessionOptions } from './session';
export { Stream, INITIAL_PEER_WINDOW } from './stream';
export {
  DEFAULT_SMUX_CONFIG,
  resolveSmuxConfig,
  smuxConfigFromMetadata,
  verifySmuxConfig,
  type SmuxConfig,
} from './config';
export { FrameDecoder, decodeFrames, type DecodedFrame, type FrameHandler, type FrameDecoderOptions } from './decoder';
export {
  CMD_SYN,
  CMD_FIN,
  CMD_PSH,
  CMD_NOP,
  CMD_UPD,
  HEADER_SIZE,
  UPD_SIZE,
  MAX_FRAME_LENGTH,
  cmdName,
  decodeHeader,
  decodeWindowUpdate,
  encodeFrame,
  encodeHeader,
  encodeUpdFrame,
  encodeWindowUpdate,
  writeHeader,
  type FrameHeader,
  type WindowUpdate,
} from './frame';
