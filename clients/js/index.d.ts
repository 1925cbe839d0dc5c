// Types for push-core-client; see index.mjs for the documentation.
import type { Socket, ManagerOptions, SocketOptions } from 'socket.io-client';

export const STATUS_EVENT: 'push:recovery';
export const MISSED_EVENT: 'push:missed';

export interface RecoveredInfo { replayed: number; offset: string }
export interface ResetInfo { offset: string }
export interface MissedInfo { missed: number }

export interface PushOptions extends Partial<Omit<ManagerOptions & SocketOptions, 'auth'>> {
  /** Where the page starts, e.g. rendered from PHP's PushClient::position(). */
  offset?: string;
  /** Extra auth fields; the helper adds `offset`. */
  auth?: Record<string, unknown>;
  /** The page connected with an offset and the `replayed` messages it missed reached the handlers. */
  onRecovered?: (info: RecoveredInfo) => void;
  /** What the page missed could not be recovered (at a reconnect, or while it read too slowly): reload the page's state. */
  onReset?: (info: ResetInfo) => void;
  /** Recovery off: the page read too slowly and lost `missed` messages: reload the page's state. */
  onMissed?: (info: MissedInfo) => void;
}

export declare class PushSocket {
  readonly socket: Socket;
  readonly offset: string | undefined;
  on(event: string, handler: (...args: any[]) => void): this;
  off(event: string, handler: (...args: any[]) => void): this;
  close(): void;
}

export declare function connect(
  io: (url: string, options?: Partial<ManagerOptions & SocketOptions>) => Socket,
  url: string,
  options?: PushOptions,
): PushSocket;
