// Types for push-core-client; see index.mjs for the documentation.
import type { Socket, ManagerOptions, SocketOptions } from 'socket.io-client';

export const STATUS_EVENT: 'push:recovery';

export interface RecoveredInfo { replayed: number; offset: string }
export interface ResetInfo { offset: string }

export interface PushOptions extends Partial<ManagerOptions & SocketOptions> {
  offset?: string;
  auth?: Record<string, unknown>;
  onRecovered?: (info: RecoveredInfo) => void;
  onReset?: (info: ResetInfo) => void;
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
