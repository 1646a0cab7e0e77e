import type { AgentClient, AgentEndpoint } from '../agent-client';

export type PowerState = 'power on' | 'power off';
export const POWER_TARGETS = ['power on', 'power off', 'rebooting'] as const;
export type PowerTarget = (typeof POWER_TARGETS)[number];

/** What a driver gets to act on a node: its info, its secrets (read from the database), its agent. */
export interface DriverNode {
  hostname: string;
  driverInfo: Record<string, unknown>;
  secrets: Record<string, string>;
  agent: AgentEndpoint | null;
}

export interface DriverContext {
  agents: AgentClient;
  /** Aborts the call (the power sync's per-node deadline); drivers that run a command kill it. */
  signal?: AbortSignal;
}

/** A field of driver_info: required or not, and secret (write-only) or not. */
export interface DriverField {
  name: string;
  required: boolean;
  secret?: boolean;
  /** Checks a value given; returns the problem, or undefined. */
  check?: (value: unknown) => string | undefined;
}

/** The power interface of Ironic's model. A driver is one file `<name>.driver.ts` exporting one of these. */
export interface PowerDriver {
  name: string;
  fields: DriverField[];
  /** Reaches the BMC with the node's credentials; resolves with the current power state. */
  validate(node: DriverNode, ctx: DriverContext): Promise<PowerState>;
  getPowerState(node: DriverNode, ctx: DriverContext): Promise<PowerState>;
  setPowerState(node: DriverNode, target: PowerState, ctx: DriverContext): Promise<void>;
  reboot(node: DriverNode, ctx: DriverContext): Promise<void>;
}

/** A driver's refusal or failure, in words an operator can act on. */
export class DriverError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DriverError';
  }
}
