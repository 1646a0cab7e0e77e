/** Tests and the benchmark make their throwaway databases the same way. */
export { createTestDatabase, postgresAvailable } from '../../src/dev/scratch-database';
