import { ConfigError, loadConfig } from '../src/config';

describe('settings added for discovery and the dashboard', () => {
  test('defaults: cluster "default", joined agents call the API itself, no UI link without a dev server', () => {
    const config = loadConfig({ PORT: '8081' });
    expect(config.discover).toMatchObject({ clusterName: 'default', serverUrl: 'http://127.0.0.1:8081', defaultUser: 'root', joinCommand: 'nodeagent join', agentPort: 9443 });
    expect(config.temporalUiUrl).toBeUndefined();
    // PORT=0: the URL is known only once the API listens.
    expect(loadConfig({ PORT: '0' }).discover.serverUrl).toBe('');
  });

  test('explicit values are taken, a trailing slash dropped', () => {
    const config = loadConfig({ AGENT_SERVER_URL: 'https://nodes.example:8443/', TEMPORAL_UI_URL: 'http://temporal-ui.example:8080/', CLUSTER_NAME: 'rack-7' });
    expect(config.discover.serverUrl).toBe('https://nodes.example:8443');
    expect(config.temporalUiUrl).toBe('http://temporal-ui.example:8080');
    expect(config.discover.clusterName).toBe('rack-7');
  });

  test.each([
    ['AGENT_SERVER_URL', 'nodes.example:8443'],
    ['TEMPORAL_UI_URL', 'ftp://ui.example'],
    ['CLUSTER_NAME', 'two words'],
    ['DISCOVER_SANDBOX', 'relative/dir'],
    ['DISCOVER_CONNECT_TIMEOUT', 'soon'],
    ['DISCOVER_AGENT_PORT', '70000'],
  ])('a bad %s stops start-up naming it', (name, value) => {
    expect(() => loadConfig({ [name]: value })).toThrow(ConfigError);
    expect(() => loadConfig({ [name]: value })).toThrow(name);
  });
});
