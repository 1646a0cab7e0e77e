import { createPublicKey } from 'node:crypto';
import type { Knex } from 'knex';

interface Migration {
  name: string;
  up(knex: Knex): Promise<void>;
}

/** Append only: a released migration is never edited, a change is a new entry. */
const MIGRATIONS: Migration[] = [
  {
    name: '001_nodes_tasks_events',
    async up(knex) {
      await knex.schema.createTable('nodes', (t) => {
        t.text('hostname').primary();
        t.text('state').notNullable();
        t.text('fingerprint').notNullable();
        t.text('public_key').notNullable();
        t.text('address').notNullable();
        t.jsonb('facts');
        t.text('last_error');
        t.timestamp('announced_at', { useTz: true }).notNullable();
        t.timestamp('accepted_at', { useTz: true });
        t.timestamp('facts_at', { useTz: true });
        t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
        t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
        t.index(['state']);
      });
      await knex.schema.createTable('tasks', (t) => {
        t.uuid('id').primary();
        t.text('kind').notNullable();
        t.text('hostname');
        t.text('status').notNullable();
        t.text('error');
        t.jsonb('result');
        t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
        t.timestamp('started_at', { useTz: true });
        t.timestamp('finished_at', { useTz: true });
        t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
        t.index(['hostname']);
        t.index(['status']);
      });
      await knex.schema.createTable('node_events', (t) => {
        t.bigIncrements('id');
        t.text('hostname').notNullable();
        t.text('type').notNullable();
        t.text('from_state');
        t.text('to_state');
        t.text('event');
        t.text('cause');
        t.uuid('task_id');
        // Set by the workflow so that a retried activity does not record one transition twice.
        t.text('transition_id').unique();
        t.timestamp('at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
        t.index(['hostname', 'id']);
      });
    },
  },
  {
    name: '002_operations_events_reachability',
    async up(knex) {
      await knex.schema.alterTable('nodes', (t) => {
        // The stable state a transient one was entered from: where a rolled-back commission returns.
        t.text('previous_state');
        // null until the monitor has seen the node once; then false after DISAPPEAR_AFTER of silence.
        t.boolean('reachable');
        t.timestamp('last_seen_at', { useTz: true });
        t.boolean('monitoring_silenced').notNullable().defaultTo(false);
      });
      await knex.raw('update nodes set last_seen_at = announced_at');
      await knex.schema.alterTable('tasks', (t) => {
        t.jsonb('details');
        // commit or rollback: the all-or-nothing outcome of a bulk commission.
        t.text('decision');
      });
      // The operation queue: one row per node and request. The id is the global submission order;
      // a node runs its rows strictly in id order, and at most the cap of rows hold a slot at once.
      await knex.schema.createTable('operations', (t) => {
        t.bigIncrements('id');
        t.uuid('task_id').notNullable().references('tasks.id');
        t.text('hostname').notNullable();
        t.text('kind').notNullable();
        t.text('status').notNullable();
        t.jsonb('extra_vars').notNullable();
        t.boolean('holds_slot').notNullable().defaultTo(false);
        t.bigInteger('wants_slot_since');
        // Who this row's slot was handed to when released, so a retried release wakes them again.
        t.specificType('handed_to', 'text[]');
        t.text('error');
        t.jsonb('result');
        t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
        t.timestamp('started_at', { useTz: true });
        t.timestamp('finished_at', { useTz: true });
        t.index(['task_id', 'id']);
        t.index(['hostname', 'id']);
      });
      await knex.raw("create index operations_open on operations (hostname, id) where status in ('queued', 'running', 'waiting')");
      await knex.raw('create index operations_slot_holders on operations (id) where holds_slot');
      await knex.raw('create index operations_slot_wanted on operations (wants_slot_since, id) where wants_slot_since is not null and not holds_slot');
      // Node events take lists of nodes (contiv's change): one row per sweep, not per node.
      await knex.schema.createTable('cluster_events', (t) => {
        t.bigIncrements('id');
        t.text('type').notNullable();
        t.specificType('nodes', 'text[]').notNullable();
        t.jsonb('details');
        t.timestamp('at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
        t.index(['type', 'id']);
      });
      await knex.raw('create index cluster_events_nodes on cluster_events using gin (nodes)');
    },
  },
  {
    name: '003_enrollment_power',
    async up(knex) {
      // Enrolled nodes have a BMC, not necessarily an agent: the agent identity becomes optional.
      await knex.schema.alterTable('nodes', (t) => {
        t.text('fingerprint').nullable().alter();
        t.text('public_key').nullable().alter();
        t.text('address').nullable().alter();
        t.timestamp('announced_at', { useTz: true }).nullable().alter();
        t.text('driver');
        t.jsonb('driver_info');
        // Write-only values (passwords): never returned by the API, never put into a workflow payload.
        t.jsonb('driver_secrets');
        t.jsonb('instance_info');
        t.jsonb('boot_config');
        t.text('power_state');
        // The power state seen at the first successful check in manage; enforced once adopted.
        t.text('enforced_power_state');
        t.boolean('power_fault').notNullable().defaultTo(false);
        t.integer('power_sync_failures').notNullable().defaultTo(0);
      });
      await knex.schema.createTable('node_ports', (t) => {
        t.text('address').primary();
        t.text('hostname').notNullable().references('nodes.hostname').onDelete('CASCADE');
        t.index(['hostname']);
      });
    },
  },
  {
    name: '004_announcement_claims',
    async up(knex) {
      // Every key that announced a hostname, so that a second key is listed beside the first instead of
      // replacing it; the operator's accept picks one by fingerprint and the others are kept as rejected.
      await knex.schema.createTable('node_claims', (t) => {
        t.text('hostname').notNullable().references('nodes.hostname').onDelete('CASCADE');
        t.text('fingerprint').notNullable();
        t.text('public_key').notNullable();
        t.text('address').notNullable();
        t.text('status').notNullable();
        t.timestamp('first_seen_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
        t.timestamp('last_seen_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
        t.primary(['hostname', 'fingerprint']);
      });
      await knex.raw("alter table node_claims add constraint node_claims_status check (status in ('pending', 'accepted', 'rejected'))");
      // Announce used to store the key text as sent, private keys included: keep only the public part.
      for (const row of await knex('nodes').whereNotNull('public_key').select('hostname', 'public_key')) {
        let spki: string;
        try {
          spki = createPublicKey(row.public_key as string).export({ type: 'spki', format: 'pem' }).toString();
        } catch {
          continue;
        }
        if (spki !== row.public_key) await knex('nodes').where({ hostname: row.hostname }).update({ public_key: spki });
      }
      await knex.raw(`
        insert into node_claims (hostname, fingerprint, public_key, address, status, first_seen_at, last_seen_at)
        select hostname, fingerprint, public_key, address, 'pending',
               coalesce(announced_at, created_at), coalesce(last_seen_at, announced_at, created_at)
        from nodes
        where state = 'unmanaged' and fingerprint is not null and public_key is not null and address is not null`);
    },
  },
  {
    name: '005_os_install',
    async up(knex) {
      // OS images an install can write: kernel and initramfs (the installer) and the disk image with its checksum.
      await knex.schema.createTable('images', (t) => {
        t.text('name').primary();
        t.text('kernel').notNullable();
        t.text('initrd').notNullable();
        t.text('disk').notNullable();
        t.text('sha256').notNullable();
        t.bigInteger('size');
        t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
      });
      // What a node's MAC is served on the provisioning network (OpenCrowbar's DHCP and DNS database
      // roles): a fixed address, a DNS name, and the boot environment, versioned by generation.
      await knex.schema.createTable('boot_entries', (t) => {
        t.text('hostname').primary().references('nodes.hostname').onDelete('CASCADE');
        t.text('mac').notNullable().unique();
        t.text('address').notNullable().unique();
        // 'local' or 'install:<image>'.
        t.text('boot_env').notNullable().defaultTo('local');
        t.integer('generation').notNullable().defaultTo(1);
        // false: the DHCP entry is written as ignore (abort, or a node that must not boot from us).
        t.boolean('enabled').notNullable().defaultTo(true);
        t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
      });
      // An address whose MAC went away (a changed port, a deleted node): dnsmasq keeps serving a changed
      // file's old line until it restarts, so the address is never handed to another MAC by this service.
      await knex.schema.createTable('retired_boot_addresses', (t) => {
        t.text('address').primary();
        t.text('mac').notNullable();
        t.timestamp('retired_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
      });
      // Whatever removes an entry or moves it to another address (a deleted node, a changed MAC, a node
      // without ports) retires the address it had, here, in the same transaction.
      await knex.raw(`
        create function retire_boot_address() returns trigger language plpgsql as $$
        begin
          insert into retired_boot_addresses (address, mac) values (old.address, old.mac) on conflict (address) do nothing;
          return null;
        end $$`);
      await knex.raw('create trigger boot_entries_retire_on_delete after delete on boot_entries for each row execute function retire_boot_address()');
      await knex.raw(
        'create trigger boot_entries_retire_on_move after update of address on boot_entries for each row when (old.address is distinct from new.address) execute function retire_boot_address()',
      );
      // One row per node of a deploy request (its queued operation); the task may span many nodes.
      await knex.schema.createTable('installs', (t) => {
        t.bigIncrements('id');
        t.bigInteger('operation_id').notNullable().unique().references('operations.id');
        t.uuid('task_id').notNullable();
        t.text('hostname').notNullable();
        t.text('image').notNullable();
        t.integer('generation');
        // sha256 of the one-time token bound to this install's generation; the token itself is never stored.
        t.text('token_hash');
        t.text('status').notNullable();
        t.text('phase');
        t.jsonb('phases').notNullable().defaultTo('[]');
        t.text('error');
        t.text('agent_fingerprint');
        t.integer('power_cycles').notNullable().defaultTo(0);
        t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
        t.timestamp('finished_at', { useTz: true });
        t.index(['hostname', 'created_at']);
      });
      // What the machine did, recorded before it is acknowledged: callbacks, lease events, script fetches.
      await knex.schema.createTable('install_events', (t) => {
        t.bigIncrements('id');
        t.bigInteger('install_id').notNullable().references('installs.id').onDelete('CASCADE');
        t.text('kind').notNullable();
        t.jsonb('detail').notNullable().defaultTo('{}');
        t.timestamp('at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
        t.index(['install_id', 'id']);
      });
      await knex.raw("create index installs_token on installs (token_hash) where token_hash is not null");
    },
  },
  {
    name: '006_discovery_over_ssh',
    async up(knex) {
      // A discovery's row in the operation queue has no node yet: the join names it.
      await knex.raw('alter table operations alter column hostname drop not null');
      // One row per address of a discover request, beside its queued operation (which holds the slot).
      await knex.schema.createTable('discoveries', (t) => {
        t.bigInteger('operation_id').primary().references('operations.id');
        t.uuid('task_id').notNullable();
        // host:port, canonical (see src/ssh/address.ts)
        t.text('address').notNullable();
        t.text('ssh_user').notNullable();
        t.text('host_key_policy').notNullable();
        t.text('pinned_fingerprint');
        t.text('pinned_type');
        // The host name the operator gave for the node, if any.
        t.text('hostname_hint');
        // The step the discovery is at, or failed in: connect, host_key, auth, sudo, join, announce, initialize.
        t.text('step');
        t.text('host_key_fingerprint');
        // What the join reported over the verified channel: the agent that vouches for the node.
        t.text('hostname');
        t.text('agent_fingerprint');
        t.text('outcome');
        t.index(['address']);
        t.index(['hostname']);
      });
      // tofu: the host key seen at an address's first contact; later contacts must show the same.
      await knex.schema.createTable('ssh_known_hosts', (t) => {
        t.text('address').primary();
        t.text('key_type').notNullable();
        t.text('fingerprint').notNullable();
        t.timestamp('first_seen_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
        t.timestamp('last_seen_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
      });
    },
  },
  {
    name: '007_scrape_and_feed_indexes',
    async up(knex) {
      // /metrics reads the tasks and installs finished since its last scrape: without these, every scrape
      // would scan the whole history.
      await knex.raw('create index tasks_finished_at on tasks (finished_at) where finished_at is not null');
      await knex.raw('create index installs_finished_at on installs (finished_at) where finished_at is not null');
      // The dashboard's change feed reads the nodes and tasks changed in the last seconds, once a second.
      await knex.raw('create index nodes_updated_at on nodes (updated_at)');
      await knex.raw('create index tasks_updated_at on tasks (updated_at)');
    },
  },
  {
    name: '008_paged_list_indexes',
    async up(knex) {
      // Every list pages by a unique key (keyset), and each filter has an index that is already in the
      // order of its key, so a page reads its 100 rows and stops, whatever the table's size. These replace
      // the single-column indexes on the same leading column.
      await knex.raw('create index nodes_state_hostname on nodes (state, hostname)');
      await knex.raw('drop index if exists nodes_state_index');
      await knex.raw('create index tasks_created_id on tasks (created_at, id)');
      await knex.raw('create index tasks_hostname_created_id on tasks (hostname, created_at, id)');
      await knex.raw('create index tasks_status_created_id on tasks (status, created_at, id)');
      await knex.raw('drop index if exists tasks_hostname_index');
      await knex.raw('drop index if exists tasks_status_index');
      await knex.raw("create index node_claims_pending on node_claims (hostname, first_seen_at, fingerprint) where status = 'pending'");
    },
  },
  {
    name: '009_deployments_roles_noderoles',
    async up(knex) {
      // OpenCrowbar's deployment tree; `system` is its root and every node's home until moved.
      await knex.schema.createTable('deployments', (t) => {
        t.text('name').primary();
        t.text('parent').references('name').inTable('deployments');
        t.text('state').notNullable();
        t.text('description').notNullable().defaultTo('');
        t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
        t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
        t.timestamp('committed_at', { useTz: true });
        t.index(['parent', 'name']);
      });
      await knex('deployments').insert({ name: 'system', parent: null, state: 'committed', description: 'The root: every node until it is moved.', committed_at: knex.fn.now() });
      await knex.schema.alterTable('nodes', (t) => {
        t.text('deployment').notNullable().defaultTo('system').references('name').inTable('deployments');
        t.index(['deployment', 'hostname']);
      });
      await knex.schema.createTable('roles', (t) => {
        t.text('name').primary();
        t.text('kind').notNullable();
        t.text('description').notNullable().defaultTo('');
        t.specificType('requires', 'text[]').notNullable().defaultTo('{}');
        t.jsonb('attributes').notNullable().defaultTo('{}');
        t.text('script');
        t.integer('timeout_seconds').notNullable().defaultTo(600);
        // Bumped by every change of what the role does: a re-commit runs its noderoles again.
        t.integer('revision').notNullable().defaultTo(1);
        t.text('source').notNullable().defaultTo('api');
        t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
        t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
      });
      await knex('roles').insert([
        { name: 'os-install', kind: 'os-install', source: 'builtin', description: 'Installs the image named by the `image` attribute (deploy, or rebuild of an active node).' },
        { name: 'commission', kind: 'commission', source: 'builtin', description: "Commissions the node (its agent's commission hook)." },
      ]);
      await knex.schema.createTable('deployment_roles', (t) => {
        t.text('deployment').notNullable().references('name').inTable('deployments').onDelete('CASCADE');
        t.text('role').notNullable().references('name').inTable('roles');
        t.jsonb('attributes').notNullable().defaultTo('{}');
        t.primary(['deployment', 'role']);
      });
      await knex.schema.createTable('noderoles', (t) => {
        t.bigIncrements('id');
        t.text('deployment').notNullable().references('name').inTable('deployments');
        t.text('role').notNullable().references('name').inTable('roles');
        t.text('hostname').notNullable().references('hostname').inTable('nodes').onDelete('CASCADE');
        t.text('state').notNullable();
        t.jsonb('attributes').notNullable().defaultTo('{}');
        // What the last run was given (attributes and role revision): a re-commit compares against it.
        t.jsonb('run_attributes');
        t.integer('run_revision');
        t.text('error');
        t.uuid('task_id');
        t.bigInteger('operation_id');
        t.integer('runs').notNullable().defaultTo(0);
        t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
        t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
        t.timestamp('started_at', { useTz: true });
        t.timestamp('finished_at', { useTz: true });
        // One binding of a role to a node: a node is in one deployment, so this is unique cluster-wide.
        t.unique(['hostname', 'role']);
        t.index(['deployment', 'state']);
        t.index(['task_id']);
        t.index(['role', 'id']);
      });
      // An operation the annealer queued names its noderole; the node runs it like any other.
      await knex.schema.alterTable('operations', (t) => {
        t.bigInteger('noderole_id');
      });
    },
  },
  {
    name: '010_bulk_wave_index',
    up: async (knex) => {
      // A bulk request wakes its nodes in waves (nextWave) and counts its woken rows still moving: before
      // or in their step, or not yet finished after a commission's decision. These indexes hold only such
      // rows, so the count stays small whatever the request's size.
      await knex.raw("create index operations_task_unfinished on operations (task_id, id) where status in ('queued', 'running')");
      await knex.raw("create index operations_task_open on operations (task_id, id) where status in ('queued', 'running', 'waiting')");
    },
  },
];

/** The one way the schema is brought up to date: start-up and tests alike call this. */
export async function applyMigrations(knex: Knex): Promise<void> {
  await knex.migrate.latest({
    tableName: 'schema_migrations',
    migrationSource: {
      getMigrations: async () => MIGRATIONS.map((m) => m.name),
      getMigrationName: (name: string) => name,
      getMigration: async (name: string) => {
        const migration = MIGRATIONS.find((m) => m.name === name)!;
        return { up: migration.up, down: async () => undefined };
      },
    },
  });
}
