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
