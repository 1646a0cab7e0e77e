// The service logs every transition at info; in tests that is noise unless asked for with LOG_LEVEL.
process.env.LOG_LEVEL ??= 'warn';
