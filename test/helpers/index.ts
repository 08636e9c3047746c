export { type CachePool, cachesOn } from './caches.js';
export { type CliRun, runCli } from './cli.js';
export {
  type ClusterNode,
  type ClusterNodeInfo,
  parseClusterNodes,
  type RedisCluster,
  type StartClusterOptions,
  startCluster,
} from './cluster.js';
export { testDatabaseUrl } from './database.js';
export { jobSettled } from './jobs.js';
export {
  clientIds,
  countKeys,
  type Deferred,
  deferred,
  isTelemetryKey,
  need,
  seededRandom,
  unwrap,
} from './kit.js';
export { busHead, isTombstoned, type KeyReader, liveValue, type StreamReader } from './l2.js';
export { freePort } from './ports.js';
export { delay, pingOnce, type RedisProcess, type StartRedisOptions, startRedis } from './redis-server.js';
export {
  info,
  parseInfo,
  type RawCommandOptions,
  RespError,
  type RespValue,
  rawCommand,
  tryCommand,
} from './resp.js';
export { startTestRuntime, type TestRuntime } from './runtime.js';
export {
  type Address,
  type SentinelSet,
  type StartSentinelSetOptions,
  startSentinelSet,
} from './sentinel.js';
export { startTcpProxy, type TcpProxy } from './tcp-proxy.js';
export { type WaitOptions, waitUntil } from './wait.js';
