import { IllegalStateError } from '@temporalio/common';
import { DefaultLogger, Runtime, type LogEntry, type LogLevel as TemporalLogLevel } from '@temporalio/worker';
import { freePort } from '../dev/free-port';
import { log } from '../log';

/** Where this process's Temporal runtime serves its Prometheus text, when it does. */
let exporterUrl: string | undefined;
/** A level asked for once (tests: ERROR) holds for the runtimes made again after an idle shutdown. */
let chosenLevel: TemporalLogLevel | undefined;

export function temporalMetricsUrl(): string | undefined {
  return exporterUrl;
}

export interface TemporalRuntimeOptions {
  /**
   * HOST:PORT of the Core runtime's Prometheus exporter (TEMPORAL_METRICS_LISTEN); port 0 takes a free
   * port on that host. Undefined: no exporter.
   */
  metricsListen?: string;
  /** Temporal's own log lines at and above this level reach our log; default WARN (DEBUG with LOG_LEVEL=debug). */
  logLevel?: TemporalLogLevel;
}

const LEVEL_OF: Record<TemporalLogLevel, 'debug' | 'info' | 'warn' | 'error'> = { TRACE: 'debug', DEBUG: 'debug', INFO: 'info', WARN: 'warn', ERROR: 'error' };

/** Temporal's log lines (the SDK's, workflow code's, Core's) as ours: JSON with their workflowId, runId, activity. */
function forward(entry: LogEntry): void {
  log[LEVEL_OF[entry.level]](entry.message, entry.meta);
}

async function bindAddressOf(listen: string): Promise<string> {
  const match = /^(.*):(\d+)$/.exec(listen)!;
  const host = match[1]!;
  if (match[2] !== '0') return listen;
  return `${host}:${await freePort(host.replace(/^\[(.*)\]$/, '$1'))}`;
}

/**
 * Installs the process's Temporal Core runtime, with its Prometheus exporter, unless one is installed
 * already (then this does nothing: the runtime is one per process and cannot be changed once made).
 * Call it before any NativeConnection or Worker is made. The SDK shuts an idle runtime down (its last
 * worker and connection closed); the next call installs a new one, on a new port when the port was 0.
 *
 * Why an exporter port and not the SDK's metric buffer: Core renders its own metrics (names, buckets,
 * labels) exactly as Temporal documents them, with no translation of ours to drift; /metrics fetches that
 * text over loopback and appends it, so a single-process deployment has one scrape target.
 */
export async function ensureTemporalRuntime(options: TemporalRuntimeOptions): Promise<void> {
  chosenLevel = options.logLevel ?? chosenLevel;
  const bindAddress = options.metricsListen ? await bindAddressOf(options.metricsListen) : undefined;
  try {
    Runtime.install({
      logger: new DefaultLogger(chosenLevel ?? (process.env.LOG_LEVEL === 'debug' ? 'DEBUG' : 'WARN'), forward),
      // Shutdown is ours: the HTTP server, the worker and the dev server stop in order on one signal.
      shutdownSignals: [],
      ...(bindAddress ? { telemetryOptions: { metrics: { prometheus: { bindAddress } } } } : {}),
    });
  } catch (err) {
    if (err instanceof IllegalStateError) return;
    throw err;
  }
  exporterUrl = bindAddress ? `http://${bindAddress}/metrics` : undefined;
}

/** The runtime's Prometheus text, or why there is none (the caller reports it as a gauge at 0). */
export async function temporalMetricsText(timeoutMs = 2000): Promise<{ text: string } | { error: string } | undefined> {
  const url = exporterUrl;
  if (!url) return undefined;
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    if (!res.ok) return { error: `${url} answered ${res.status}` };
    return { text: await res.text() };
  } catch (err) {
    return { error: `${url}: ${(err as Error).message}` };
  }
}
