/**
 * The visitor socket's listeners, attached once per connection and shared by all of them
 * (`this` is the socket; a WeakMap finds its connection): no closures per connection.
 */
import type net from 'node:net';
import { destroy } from '../../../../io/pipe';

/** What a connection does with its visitor socket's events. */
export interface VisitorEvents {
  socketData(chunk: Buffer): void;
  socketEnd(): void;
  socketClose(): void;
  socketDrain(): void;
}

const visitors = new WeakMap<net.Socket, VisitorEvents>();

function onSocketData(this: net.Socket, chunk: Buffer): void {
  visitors.get(this)!.socketData(chunk);
}
function onSocketEnd(this: net.Socket): void {
  visitors.get(this)!.socketEnd();
}
function onSocketClose(this: net.Socket): void {
  visitors.get(this)!.socketClose();
}
function onSocketDrain(this: net.Socket): void {
  visitors.get(this)!.socketDrain();
}
function onSocketError(): void {
  /* 'close' follows */
}
function onSocketFinish(this: net.Socket): void {
  destroy(this);
}

/** Sends the socket's events to `v`. */
export function attachVisitor(s: net.Socket, v: VisitorEvents): void {
  visitors.set(s, v);
  s.on('data', onSocketData);
  s.on('end', onSocketEnd);
  s.on('close', onSocketClose);
  s.on('drain', onSocketDrain);
  s.on('error', onSocketError);
}

/** No more reading for the connection (the socket becomes one end of a splice); 'close' still goes to it. */
export function stopReading(s: net.Socket): void {
  s.off('data', onSocketData);
  s.off('end', onSocketEnd);
  s.off('drain', onSocketDrain);
  s.pause();
}

/** The socket is destroyed once what was written has gone out. */
export function destroyOnFinish(s: net.Socket): void {
  s.once('finish', onSocketFinish);
}
