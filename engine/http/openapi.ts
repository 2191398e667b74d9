/**
 * The OpenAPI 3.0 description of the HTTP API, served at `GET /openapi.json`. It is the contract: API fuzzers
 * (schemathesis) check every response against it, so it must say exactly what the server answers.
 */

const problemResponse = (description: string): Record<string, unknown> => ({
  description,
  content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } },
});

const json = (description: string, schema: Record<string, unknown>): Record<string, unknown> => ({
  description,
  content: { 'application/json': { schema } },
});

const ref = (name: string): Record<string, string> => ({ $ref: `#/components/schemas/${name}` });

const topicParameter = {
  name: 'topic',
  in: 'path',
  required: true,
  description: 'A topic name: 1 to 249 of a-z A-Z 0-9 . _ -',
  schema: { type: 'string', minLength: 1, maxLength: 249 },
};

const internalError = problemResponse('The engine failed (the detail never holds internals).');

const projectionParameter = {
  name: 'name',
  in: 'path',
  required: true,
  description: 'A projection name: 1 to 200 of a-z A-Z 0-9 . _ -',
  schema: { type: 'string', minLength: 1, maxLength: 200 },
};

const replayParameter = { name: 'id', in: 'path', required: true, description: 'A replay id.', schema: { type: 'string', minLength: 1 } };

const limitParameter = (description: string): Record<string, unknown> => ({
  name: 'limit',
  in: 'query',
  required: false,
  description: `${description} At most the projection store's maxScanLimit (1000 unless configured otherwise).`,
  schema: { type: 'integer', minimum: 1, maximum: 1000, default: 100 },
});

const cursorParameter = {
  name: 'cursor',
  in: 'query',
  required: false,
  description: 'The `nextCursor` of the page before (opaque).',
  schema: { type: 'string' },
};

const asOfParameter = {
  name: 'asOf',
  in: 'query',
  required: false,
  description:
    'Answer as of this event time: an ISO 8601 date-time with a time zone (2026-11-24T08:00:00Z) or milliseconds ' +
    'since 1970. Without it, the latest. It must be within the retained history (else 410).',
  schema: { type: 'string', example: '2026-11-24T08:00:00Z' },
};

const notRetainedResponse = {
  description:
    '`asOf` is older than the history the projection keeps (MILLRACE_PROJECTION_NOT_RETAINED); `retainedFrom` is the ' +
    'earliest moment answered. A replay to that moment (POST /replays with `to`) can still show it.',
  content: { 'application/problem+json': { schema: ref('NotRetainedProblem') } },
};

const badPath = problemResponse('The path is not valid percent-encoded UTF-8 (MILLRACE_HTTP_BAD_REQUEST).');

const storeNotOpen = problemResponse('The projection store is not open (MILLRACE_LOG_NOT_OPEN, MILLRACE_LOG_CLOSED).');

/** A model's routing: its stable version and its canary. */
const ROUTING_SCHEMA = {
  type: 'object',
  required: ['stable', 'canary'],
  properties: {
    stable: { type: 'string', nullable: true },
    canary: { type: 'object', nullable: true, required: ['version', 'percent'], properties: { version: { type: 'string' }, percent: { type: 'number' } } },
  },
};

/** Any JSON value a projection holds. */
const jsonValue = { description: 'Any JSON value.', nullable: true };

export const openApiDocument = Object.freeze({
  openapi: '3.0.3',
  info: {
    title: 'Millrace',
    version: '0.1.0',
    description:
      'The HTTP API of a Millrace engine: topics, producing and reading events, health, status, topologies, ' +
      'Prometheus metrics, projections (read models, as of any retained moment) and replays. Every error is an RFC 7807 problem document (application/problem+json) with a stable `code`.',
  },
  paths: {
    '/topics': {
      get: {
        operationId: 'listTopics',
        summary: 'Every topic, with its value schema and partition offsets',
        responses: {
          '200': json('The topics, sorted by name.', {
            type: 'object',
            required: ['topics'],
            properties: { topics: { type: 'array', items: ref('Topic') } },
          }),
          '500': internalError,
        },
      },
      post: {
        operationId: 'createTopic',
        summary: 'Creates a topic, registering its value schema first when one is given',
        requestBody: {
          required: true,
          content: { 'application/json': { schema: ref('CreateTopic') } },
        },
        responses: {
          '201': json('The topic was created.', ref('Topic')),
          '400': problemResponse('The body, the name or the schema is invalid (MILLRACE_HTTP_BAD_REQUEST, MILLRACE_TOPIC_NAME_INVALID, MILLRACE_TOPIC_CONFIG_INVALID, MILLRACE_SCHEMA_INVALID, MILLRACE_HTTP_MALFORMED_JSON).'),
          '404': problemResponse('The schemas folder named by `schema` does not exist (MILLRACE_SCHEMA_UNKNOWN).'),
          '409': problemResponse('The topic exists (MILLRACE_TOPIC_EXISTS) or the schema is incompatible with the version before (MILLRACE_SCHEMA_INCOMPATIBLE).'),
          '413': problemResponse('The body is too large (MILLRACE_HTTP_TOO_LARGE).'),
          '415': problemResponse('The body is not application/json (MILLRACE_HTTP_UNSUPPORTED_MEDIA_TYPE).'),
          '500': internalError,
        },
      },
    },
    '/topics/{topic}': {
      get: {
        operationId: 'describeTopic',
        summary: 'One topic, with its value schema and partition offsets',
        parameters: [topicParameter],
        responses: {
          '200': json('The topic.', ref('Topic')),
          '404': problemResponse('No such topic (MILLRACE_TOPIC_UNKNOWN).'),
          '500': internalError,
        },
      },
    },
    '/topics/{topic}/events': {
      post: {
        operationId: 'produceEvents',
        summary: 'Appends one event or a batch; all records are validated before any is appended',
        description:
          'The body is a batch `{"records": [{"key"?, "value", "timestamp"?, "headers"?, "partition"?}, …]}` (an object ' +
          'with the one key `records`, an array); or one record in that envelope form (an object whose keys are among ' +
          'key, value, timestamp, headers and partition, with `value`); or else the value itself, keyed by the `key` ' +
          'query parameter. A topic with a value schema (subject `<topic>-value`) takes values valid for its latest ' +
          'version and stores them as Confluent-framed Avro; other topics store the JSON text. A `null` value is a ' +
          'tombstone. Error paths in a 422 are JSON pointers into the record: `/value/amount`, `/timestamp`.',
        parameters: [
          topicParameter,
          { name: 'key', in: 'query', required: false, description: 'The key of a single event sent as its bare value.', schema: { type: 'string' } },
        ],
        requestBody: {
          required: true,
          content: { 'application/json': { schema: ref('ProduceBody') } },
        },
        responses: {
          '200': json('The records were appended; their coordinates, in request order.', ref('ProduceResult')),
          '400': problemResponse('Malformed JSON, no body, or a misused parameter (MILLRACE_HTTP_MALFORMED_JSON, MILLRACE_HTTP_BAD_REQUEST).'),
          '404': problemResponse('No such topic (MILLRACE_TOPIC_UNKNOWN).'),
          '413': problemResponse('The body is too large, or holds more records than the server takes at once (MILLRACE_HTTP_TOO_LARGE).'),
          '415': problemResponse('The body is not application/json (MILLRACE_HTTP_UNSUPPORTED_MEDIA_TYPE).'),
          '422': {
            description: 'Some records are invalid; nothing was appended (MILLRACE_SCHEMA_VIOLATION, MILLRACE_HTTP_VALIDATION).',
            content: { 'application/problem+json': { schema: ref('RecordsProblem') } },
          },
          '500': internalError,
          '503': problemResponse('The log is not open (MILLRACE_LOG_NOT_OPEN, MILLRACE_LOG_CLOSED).'),
        },
      },
      get: {
        operationId: 'readEvents',
        summary: 'Reads records, decoded; without `partition`, from every partition, fairly',
        description:
          'Starts at `offset` (`earliest`, the default; `latest`; a number; or `partition:offset` pairs separated by ' +
          'commas, which reads just those partitions), or at the first record at or after `from`. `next` holds where ' +
          'each partition read should continue. A record whose value cannot be decoded is returned with an `error`: ' +
          'its value is then `null` (Avro topics) or `{"base64": …}` (the bytes, on topics without a schema).',
        parameters: [
          topicParameter,
          { name: 'partition', in: 'query', required: false, schema: { type: 'integer', minimum: 0 } },
          { name: 'offset', in: 'query', required: false, schema: { type: 'string', example: 'earliest' } },
          { name: 'from', in: 'query', required: false, schema: { type: 'string', format: 'date-time' } },
          { name: 'limit', in: 'query', required: false, schema: { type: 'integer', minimum: 1, maximum: 1000, default: 100 } },
          {
            name: 'waitMs',
            in: 'query',
            required: false,
            description: 'When no record is there yet, wait up to this long for one.',
            schema: { type: 'integer', minimum: 0, maximum: 30000, default: 0 },
          },
        ],
        responses: {
          '200': json('The records, by timestamp across partitions and in offset order within each.', ref('ReadResult')),
          '400': problemResponse('A query parameter is invalid (MILLRACE_HTTP_BAD_REQUEST).'),
          '404': problemResponse('No such topic or partition (MILLRACE_TOPIC_UNKNOWN, MILLRACE_PARTITION_UNKNOWN).'),
          '500': internalError,
          '503': problemResponse('The log is not open (MILLRACE_LOG_NOT_OPEN, MILLRACE_LOG_CLOSED).'),
        },
      },
    },
    '/health': {
      get: {
        operationId: 'health',
        summary: 'Liveness: 200 while the engine runs, 503 otherwise',
        responses: {
          '200': json('The engine runs; `status` is `degraded` when an application failed.', ref('Health')),
          '503': json('The engine does not run.', ref('Health')),
        },
      },
    },
    '/status': {
      get: {
        operationId: 'status',
        summary: 'The engine, its applications and their tasks, with lag',
        responses: { '200': json('The status.', ref('EngineStatus')), '500': internalError },
      },
    },
    '/console/config.json': {
      get: {
        operationId: 'consoleConfig',
        summary: 'How the ops console (every path under /console) may be used',
        responses: {
          '200': json('The console configuration.', { type: 'object', required: ['readOnly'], properties: { readOnly: { type: 'boolean', description: 'Started with --console-read-only: the console offers no action.' } } }),
        },
      },
    },
    '/topologies': {
      get: {
        operationId: 'topologies',
        summary: 'The describe() of every topology the engine runs',
        responses: {
          '200': json('The topologies.', {
            type: 'object',
            required: ['topologies'],
            properties: { topologies: { type: 'array', items: { type: 'object' } } },
          }),
          '500': internalError,
        },
      },
    },
    '/metrics': {
      get: {
        operationId: 'metrics',
        summary: 'Prometheus metrics, in the text exposition format',
        responses: {
          '200': { description: 'The metrics.', content: { 'text/plain': { schema: { type: 'string' } } } },
          '500': internalError,
        },
      },
    },
    '/models': {
      get: {
        operationId: 'models',
        summary: 'The model registry: each model with its versions, stage, traffic share and metrics',
        responses: {
          '200': json('The models.', {
            type: 'object',
            required: ['models'],
            properties: {
              models: {
                type: 'array',
                items: {
                  type: 'object',
                  required: ['name', 'stable', 'canary', 'versions'],
                  properties: {
                    name: { type: 'string' },
                    stable: { type: 'string', nullable: true },
                    canary: { type: 'object', nullable: true, properties: { version: { type: 'string' }, percent: { type: 'number' } } },
                    versions: {
                      type: 'array',
                      items: {
                        type: 'object',
                        properties: {
                          version: { type: 'string' },
                          stage: { type: 'string', enum: ['registered', 'canary', 'stable', 'retired', 'rolled-back', 'refused'] },
                          trafficPercent: { type: 'number' },
                          sha256: { type: 'string' },
                          artifactUri: { type: 'string' },
                          metrics: { type: 'object', additionalProperties: { type: 'number' } },
                          lastDecision: {
                            type: 'object',
                            description: 'The last promotion or rollback of this version that took effect; absent when there was none.',
                            required: ['action', 'decidedBy', 'at'],
                            properties: {
                              action: { type: 'string', enum: ['promote', 'rollback'] },
                              decidedBy: { type: 'string', enum: ['operator', 'controller'] },
                              at: { type: 'string' },
                              reason: { type: 'string' },
                              evidence: { type: 'string' },
                            },
                          },
                        },
                      },
                    },
                  },
                },
              },
            },
          }),
          '500': internalError,
        },
      },
    },
    '/v1/models/{name}:predict': {
      post: {
        operationId: 'predict',
        summary: 'Scores up to 100 instances with the stable version of a model',
        parameters: [{ name: 'name', in: 'path', required: true, schema: { type: 'string' } }],
        requestBody: {
          required: true,
          content: {
            'application/json': {
              schema: {
                type: 'object',
                required: ['instances'],
                properties: {
                  instances: {
                    type: 'array',
                    minItems: 1,
                    maxItems: 100,
                    items: { oneOf: [{ type: 'object', additionalProperties: { type: 'number' } }, { type: 'array', items: { type: 'number' } }] },
                  },
                },
              },
            },
          },
        },
        responses: {
          '200': json('One prediction per instance, in order.', {
            type: 'object',
            required: ['model', 'version', 'predictions'],
            properties: {
              model: { type: 'string' },
              version: { type: 'string' },
              predictions: {
                type: 'array',
                items: { type: 'object', required: ['class', 'probability'], properties: { class: { type: 'integer', enum: [0, 1] }, probability: { type: 'number' } } },
              },
            },
          }),
          '400': problemResponse('The body is not JSON.'),
          '404': problemResponse('No model of that name is registered.'),
          '422': problemResponse('An instance is not a row of finite features, or there are more than 100.'),
          '500': problemResponse('The model file does not match its SHA-256, or inference failed.'),
          '503': problemResponse('The model has no stable version yet, or inference is overloaded.'),
        },
      },
    },
    ...Object.fromEntries(
      (['promote', 'rollback'] as const).map((action) => [
        `/models/{name}/${action}`,
        {
          post: {
            operationId: action === 'promote' ? 'promoteModelVersion' : 'rollBackModelVersion',
            summary:
              action === 'promote'
                ? "Makes a version the model's stable one (a canary, a registered version, or an earlier stable one): a dry run first, then the decision with its token"
                : 'Rolls back the canary, or the stable version when an earlier usable stable one can serve again: a dry run first, then the decision with its token',
            description:
              'Without `token` nothing changes: the answer is the routing before (`from`) and after (`to`) and a `token` naming that plan. ' +
              'With the token, the decision (`decided_by: operator`) is appended to `model-registry` and an audit event to `_audit` ' +
              '(`GET /audit`), in one transaction; a plan that changed since is refused (409). The retraining controller stops judging ' +
              'a canary the decision settles. Served only by an engine with a model registry.',
            parameters: [{ name: 'name', in: 'path', required: true, description: 'The model name.', schema: { type: 'string', minLength: 1 } }],
            requestBody: {
              required: true,
              content: {
                'application/json': {
                  schema: {
                    type: 'object',
                    required: ['version'],
                    additionalProperties: false,
                    properties: {
                      version: { type: 'string', minLength: 1, maxLength: 200 },
                      reason: { type: 'string', maxLength: 1000, description: 'Kept in the registry event and the audit event.' },
                      token: { type: 'string', minLength: 1, maxLength: 100, description: 'The token of the dry run, to carry it out.' },
                    },
                  },
                },
              },
            },
            responses: {
              '200': json('The plan (dry run) or the decision taken.', {
                type: 'object',
                required: ['dryRun', 'action', 'model', 'version'],
                properties: {
                  dryRun: { type: 'boolean' },
                  action: { type: 'string', enum: ['promote', 'rollback'] },
                  model: { type: 'string' },
                  version: { type: 'string' },
                  from: { ...ROUTING_SCHEMA, description: 'Dry run: the routing now.' },
                  to: { ...ROUTING_SCHEMA, description: 'Dry run: the routing after the decision.' },
                  token: { type: 'string', description: 'Dry run: give it back to carry the plan out.' },
                  audit: {
                    type: 'object',
                    description: 'Decision: where its audit event was written.',
                    required: ['topic', 'partition', 'offset'],
                    properties: { topic: { type: 'string' }, partition: { type: 'integer' }, offset: { type: 'integer' } },
                  },
                },
              }),
              '400': problemResponse(
                'The body is not JSON, or the decision cannot apply: a refused version, not the canary or stable version, the stable version already, ' +
                  'or no earlier stable version to fall back to (MILLRACE_HTTP_MALFORMED_JSON, MILLRACE_MODEL_DECISION_INVALID).',
              ),
              '404': problemResponse('No model of that name, or no such version (MILLRACE_HTTP_NOT_FOUND).'),
              '409': problemResponse('The model changed since the dry run, or the token is not from one (MILLRACE_MODEL_DECISION_STALE).'),
              '422': problemResponse('The body failed validation (MILLRACE_HTTP_VALIDATION).'),
              '500': internalError,
            },
          },
        },
      ]),
    ),
    '/projections': {
      get: {
        operationId: 'listProjections',
        summary: 'Every projection: its namespace, state, lag per source partition, and any rebuild',
        description: 'An engine without projections lists none.',
        responses: {
          '200': json('The projections, in the order they are defined.', {
            type: 'object',
            required: ['projections'],
            properties: { projections: { type: 'array', items: ref('ProjectionInfo') } },
          }),
          '500': internalError,
        },
      },
    },
    '/projections/{name}': {
      get: {
        operationId: 'scanProjection',
        summary: 'A page of a projection\'s keys in key order, now or as of a moment, optionally under a prefix',
        description:
          'Keys come in the byte order of their UTF-8. Pass `nextCursor` as `cursor`, with the same `prefix`, for the ' +
          'next page; every key present throughout is returned exactly once. A page can hold fewer than `limit` items ' +
          'and still have a `nextCursor`; the scan is complete when there is none.',
        parameters: [projectionParameter, { name: 'prefix', in: 'query', required: false, description: 'Only keys starting with this.', schema: { type: 'string' } }, limitParameter('Most items in the page.'), cursorParameter, asOfParameter],
        responses: {
          '200': json('The page.', ref('ProjectionPage')),
          '400': badPath,
          '404': problemResponse('No such projection (MILLRACE_PROJECTION_UNKNOWN).'),
          '410': notRetainedResponse,
          '422': problemResponse('`limit`, `asOf`, `prefix` or `cursor` is invalid, or given twice (MILLRACE_HTTP_VALIDATION).'),
          '500': internalError,
          '503': storeNotOpen,
        },
      },
    },
    '/projections/{name}/{key}': {
      get: {
        operationId: 'getProjectionKey',
        summary: 'One key of a projection, now or as of a moment',
        parameters: [
          projectionParameter,
          {
            name: 'key',
            in: 'path',
            required: true,
            description:
              'The key, percent-encoded as by encodeURIComponent: `/` as %2F, a space as %20, other characters as their ' +
              'UTF-8. Everything after the projection name is the key, so a `/` sent unencoded is read as part of it.',
            schema: { type: 'string', minLength: 1 },
          },
          asOfParameter,
        ],
        responses: {
          '200': json('The key\'s value, and the event time it is valid from.', ref('ProjectionEntry')),
          '400': badPath,
          '404': problemResponse('No such projection (MILLRACE_PROJECTION_UNKNOWN), or it has no such key, as of `asOf` when given (MILLRACE_PROJECTION_KEY_ABSENT).'),
          '410': notRetainedResponse,
          '422': problemResponse('`asOf` or the key is invalid (empty, over the store\'s key size), or `asOf` is given twice (MILLRACE_HTTP_VALIDATION).'),
          '500': internalError,
          '503': storeNotOpen,
        },
      },
    },
    '/projections/{name}/rebuild': {
      post: {
        operationId: 'rebuildProjection',
        summary: 'Starts rebuilding a projection from the log beside the live one; it takes over when caught up',
        description:
          'The rebuild runs into the next generation namespace (`gen-2`, `gen-3`, …) while the live one keeps serving. ' +
          'Poll `GET /projections`: its `rebuild` shows the progress, and `namespace` changes when it has switched over. ' +
          'No body is needed.',
        parameters: [projectionParameter],
        responses: {
          '202': {
            description: 'The rebuild started.',
            headers: { Location: { description: 'The projection: `/projections/{name}`.', schema: { type: 'string' } } },
            content: {
              'application/json': {
                schema: {
                  type: 'object',
                  required: ['projection', 'rebuild'],
                  properties: { projection: { type: 'string' }, rebuild: ref('RebuildStatus') },
                },
              },
            },
          },
          '400': problemResponse('A body was sent that is not JSON (MILLRACE_HTTP_MALFORMED_JSON), or the path is not valid percent-encoded UTF-8 (MILLRACE_HTTP_BAD_REQUEST).'),
          '404': problemResponse('No such projection (MILLRACE_PROJECTION_UNKNOWN).'),
          '409': problemResponse('The projection is being rebuilt already (MILLRACE_PROJECTION_BUSY).'),
          '413': problemResponse('The body is too large (MILLRACE_HTTP_TOO_LARGE).'),
          '415': problemResponse('A body was sent that is not application/json (MILLRACE_HTTP_UNSUPPORTED_MEDIA_TYPE).'),
          '500': internalError,
          '503': storeNotOpen,
        },
      },
    },
    '/replays': {
      get: {
        operationId: 'listReplays',
        summary: 'Every replay kept (running, finished, failed, stopped, interrupted), newest first',
        responses: {
          '200': json('The replays.', {
            type: 'object',
            required: ['replays'],
            properties: { replays: { type: 'array', items: ref('Replay') } },
          }),
          '500': internalError,
        },
      },
      post: {
        operationId: 'createReplay',
        summary: 'Replays a slice of the log through a projection or a topology, in a sandbox, recording each step; answers at once',
        description:
          'The replay runs in the background: poll `GET /replays/{id}` until its `state` is no longer `running`. For a ' +
          'projection, a slice from the start of the log starts from an empty sandbox; a later one starts from live as ' +
          'it stood just before the slice, which must still be within the retained history (else 410).',
        requestBody: {
          required: true,
          content: { 'application/json': { schema: ref('ReplayRequest') } },
        },
        responses: {
          '201': {
            description: 'The replay started.',
            headers: { Location: { description: 'The replay: `/replays/{id}`.', schema: { type: 'string' } } },
            content: { 'application/json': { schema: ref('Replay') } },
          },
          '400': problemResponse('Not exactly one of `projection` and `topology` is named, no running topology has that application id, `from` or `to` is neither an offset nor an ISO 8601 time, or `code` cannot be used (MILLRACE_REPLAY_INVALID); or the body is not JSON (MILLRACE_HTTP_MALFORMED_JSON).'),
          '404': problemResponse('No such projection (MILLRACE_PROJECTION_UNKNOWN).'),
          '410': problemResponse('The slice starts before the retained history of live, from which the sandbox would start (MILLRACE_PROJECTION_NOT_RETAINED); `retainedFrom` says where it begins.'),
          '413': problemResponse('The body is too large (MILLRACE_HTTP_TOO_LARGE).'),
          '415': problemResponse('The body is not application/json (MILLRACE_HTTP_UNSUPPORTED_MEDIA_TYPE).'),
          '422': problemResponse('The body does not have the shape of a replay request (MILLRACE_HTTP_VALIDATION).'),
          '429': problemResponse('As many replays are running as are allowed at once (MILLRACE_REPLAY_LIMIT); retry when one has finished.'),
          '500': internalError,
          '503': storeNotOpen,
        },
      },
    },
    '/replays/{id}': {
      get: {
        operationId: 'getReplay',
        summary: 'One replay, with its progress',
        parameters: [replayParameter],
        responses: {
          '200': json('The replay.', ref('Replay')),
          '400': badPath,
          '404': problemResponse('No such replay (MILLRACE_REPLAY_UNKNOWN).'),
          '500': internalError,
        },
      },
      delete: {
        operationId: 'deleteReplay',
        summary: 'Stops a replay if it runs, and removes it with its sandbox, steps and diff',
        parameters: [replayParameter],
        responses: {
          '204': { description: 'The replay is gone.' },
          '400': badPath,
          '404': problemResponse('No such replay (MILLRACE_REPLAY_UNKNOWN).'),
          '500': internalError,
          '503': storeNotOpen,
        },
      },
    },
    '/replays/{id}/steps': {
      get: {
        operationId: 'replaySteps',
        summary: 'A page of a replay\'s steps, in the order the records were replayed',
        description: 'Pass `nextCursor` as `cursor` for the next page. A running replay answers the steps recorded so far.',
        parameters: [replayParameter, limitParameter('Most steps in the page.'), cursorParameter],
        responses: {
          '200': json('The page.', {
            type: 'object',
            required: ['steps'],
            properties: { steps: { type: 'array', items: ref('ReplayStep') }, nextCursor: { type: 'string' } },
          }),
          '400': badPath,
          '404': problemResponse('No such replay (MILLRACE_REPLAY_UNKNOWN).'),
          '422': problemResponse('`limit` or `cursor` is invalid, or given twice (MILLRACE_HTTP_VALIDATION).'),
          '500': internalError,
          '503': storeNotOpen,
        },
      },
    },
    '/replays/{id}/diff': {
      get: {
        operationId: 'replayDiff',
        summary: 'A page of the keys whose sandbox value differs from live\'s, as of the slice\'s last moment',
        description:
          'Each page looks at `limit` of the keys the replay changed, in key order, and lists those that differ: a page ' +
          'can hold fewer entries than `limit`, even none, and still have a `nextCursor`. The diff is complete when ' +
          'there is no `nextCursor`.',
        parameters: [replayParameter, limitParameter('Most changed keys the page looks at.'), cursorParameter],
        responses: {
          '200': json('The page.', {
            type: 'object',
            required: ['asOf', 'entries'],
            properties: {
              asOf: { type: 'string', format: 'date-time', nullable: true, description: 'The moment live is read as of; null when no record was replayed.' },
              entries: { type: 'array', items: ref('DiffEntry') },
              nextCursor: { type: 'string' },
            },
          }),
          '400': problemResponse('The replay is still running (MILLRACE_REPLAY_INVALID), or the path is not valid percent-encoded UTF-8 (MILLRACE_HTTP_BAD_REQUEST).'),
          '404': problemResponse('No such replay, or its projection is gone (MILLRACE_REPLAY_UNKNOWN, MILLRACE_PROJECTION_UNKNOWN).'),
          '410': problemResponse('Live is no longer retained as of the slice\'s last moment (MILLRACE_PROJECTION_NOT_RETAINED).'),
          '422': problemResponse('`limit` or `cursor` is invalid, or given twice (MILLRACE_HTTP_VALIDATION).'),
          '500': internalError,
          '503': storeNotOpen,
        },
      },
    },
    '/topics/{topic}/keys/{key}': {
      get: {
        operationId: 'recordsByKey',
        summary: 'A key\'s records, newest first: the partitioner names the partition, read backwards from its end (bounded)',
        parameters: [
          topicParameter,
          { name: 'key', in: 'path', required: true, description: 'The record key, as UTF-8.', schema: { type: 'string' } },
          limitParameter('Most records (1 to 1000, default 10).'),
          { name: 'maxScan', in: 'query', required: false, description: 'Most records of the partition read (default 100000).', schema: { type: 'integer', minimum: 1, maximum: 1000000 } },
        ],
        responses: {
          '200': json('The records.', {
            type: 'object',
            required: ['topic', 'key', 'partition', 'records', 'scanned', 'complete'],
            properties: {
              topic: { type: 'string' },
              key: { type: 'string' },
              partition: { type: 'integer' },
              records: { type: 'array', items: { type: 'object' } },
              scanned: { type: 'integer' },
              complete: { type: 'boolean', description: 'False when the scan stopped at maxScan before the partition\'s start with fewer than `limit` found.' },
            },
          }),
          '404': problemResponse('No such topic (MILLRACE_TOPIC_UNKNOWN).'),
          '422': problemResponse('`limit` or `maxScan` is invalid (MILLRACE_HTTP_VALIDATION).'),
          '500': internalError,
        },
      },
    },
    '/lineage/{topic}/{partition}/{offset}': {
      get: {
        operationId: 'lineage',
        summary: 'A record and the records it came from: `source` and `lineage.<name>` coordinates, followed breadth first',
        parameters: [
          topicParameter,
          { name: 'partition', in: 'path', required: true, schema: { type: 'integer', minimum: 0 } },
          { name: 'offset', in: 'path', required: true, schema: { type: 'integer', minimum: 0 } },
        ],
        responses: {
          '200': json('The record and its inputs (at most 4 levels, 50 records), each with the links it has and whether they were found.', {
            type: 'object',
            required: ['root', 'records'],
            properties: { root: { type: 'object' }, records: { type: 'array', items: { type: 'object' } } },
          }),
          '404': problemResponse('No such topic, or no record at that offset (MILLRACE_TOPIC_UNKNOWN, MILLRACE_HTTP_NOT_FOUND).'),
          '422': problemResponse('A coordinate is not a non-negative integer (MILLRACE_HTTP_VALIDATION).'),
          '500': internalError,
        },
      },
    },
    '/dead-letters': {
      get: {
        operationId: 'deadLetterTopics',
        summary: 'The dead-letter topics (`<topic>.dlq`) with their offsets and how many records they hold',
        responses: {
          '200': json('The dead-letter topics.', {
            type: 'object',
            required: ['deadLetterTopics'],
            properties: {
              deadLetterTopics: {
                type: 'array',
                items: {
                  type: 'object',
                  required: ['topic', 'partitions', 'records'],
                  properties: {
                    topic: { type: 'string' },
                    partitions: { type: 'array', items: { type: 'object', properties: { partition: { type: 'integer' }, start: { type: 'integer' }, end: { type: 'integer' } } } },
                    records: { type: 'integer' },
                  },
                },
              },
            },
          }),
          '500': internalError,
        },
      },
    },
    ...Object.fromEntries(
      (['redrive', 'skip'] as const).map((action) => [
        `/dead-letters/{topic}/${action}`,
        {
          post: {
            operationId: action === 'redrive' ? 'redriveDeadLetters' : 'skipDeadLetters',
            summary:
              action === 'redrive'
                ? 'Sends a range of dead letters back to the topics they came from: a dry run first, then the action with its token'
                : 'Marks a range of dead letters handled without sending them: a dry run first, then the action with its token',
            description:
              'With `dryRun` (the default) nothing changes: the answer is the plan (each dead letter, where it would go, whether an ' +
              'earlier action took it) and a `token` naming it. With `dryRun: false` and that token, the dead letters not handled before ' +
              'are taken and an audit event is written (`GET /audit`), in one transaction; a plan that changed since is refused (409).',
            parameters: [topicParameter],
            requestBody: {
              required: true,
              content: {
                'application/json': {
                  schema: {
                    type: 'object',
                    required: ['from', 'to'],
                    additionalProperties: false,
                    properties: {
                      partition: { type: 'integer', minimum: 0, default: 0 },
                      from: { type: 'integer', minimum: 0, description: 'First offset, inclusive.' },
                      to: { type: 'integer', minimum: 0, description: 'Last offset, inclusive (at most 1000 dead letters).' },
                      dryRun: { type: 'boolean', default: true },
                      token: { type: 'string', description: 'The token of the dry run, to carry it out.' },
                      reason: { type: 'string', maxLength: 1000, description: 'Kept in the audit event.' },
                    },
                  },
                },
              },
            },
            responses: {
              '200': json('The plan (dry run) or what was done.', { type: 'object', properties: { dryRun: { type: 'boolean' }, action: { type: 'string' }, count: { type: 'integer' }, token: { type: 'string' }, items: { type: 'array', items: { type: 'object' } }, audit: { type: 'object' } } }),
              '400': problemResponse('Not a dead-letter topic, a bad range, no token, or nothing to do (MILLRACE_REDRIVE_INVALID).'),
              '404': problemResponse('No such topic or partition (MILLRACE_TOPIC_UNKNOWN, MILLRACE_PARTITION_UNKNOWN).'),
              '409': problemResponse('The dead letters changed since the dry run, or the token is not from one (MILLRACE_REDRIVE_STALE).'),
              '422': problemResponse('The body failed validation (MILLRACE_HTTP_VALIDATION).'),
              '500': internalError,
            },
          },
        },
      ]),
    ),
    '/audit': {
      get: {
        operationId: 'audit',
        summary: 'The latest audit events (redrives and skips of dead letters, model promotions and roll-backs), newest first',
        parameters: [limitParameter('Most events.')],
        responses: {
          '200': json('The events.', { type: 'object', required: ['events'], properties: { events: { type: 'array', items: { type: 'object' } } } }),
          '422': problemResponse('`limit` is invalid (MILLRACE_HTTP_VALIDATION).'),
          '500': internalError,
        },
      },
    },
    '/openapi.json': {
      get: {
        operationId: 'openapi',
        summary: 'This document',
        responses: { '200': json('The OpenAPI document.', { type: 'object' }) },
      },
    },
  },
  components: {
    schemas: {
      Problem: {
        type: 'object',
        required: ['type', 'title', 'status', 'detail', 'code'],
        properties: {
          type: { type: 'string' },
          title: { type: 'string' },
          status: { type: 'integer' },
          detail: { type: 'string' },
          instance: { type: 'string' },
          code: { type: 'string', pattern: '^MILLRACE_[A-Z_]+$' },
        },
        additionalProperties: true,
      },
      RecordsProblem: {
        allOf: [
          ref('Problem'),
          {
            type: 'object',
            required: ['errors', 'errorCount'],
            properties: {
              errors: {
                type: 'array',
                items: {
                  type: 'object',
                  required: ['index', 'path', 'message'],
                  properties: {
                    index: { type: 'integer', minimum: 0 },
                    path: { type: 'string' },
                    message: { type: 'string' },
                  },
                },
              },
              errorCount: { type: 'integer', minimum: 1 },
            },
          },
        ],
      },
      SchemaRef: {
        type: 'object',
        required: ['subject', 'id', 'version'],
        properties: { subject: { type: 'string' }, id: { type: 'integer' }, version: { type: 'integer' } },
      },
      Topic: {
        type: 'object',
        required: ['name', 'partitions', 'cleanupPolicy', 'retentionMs', 'retentionBytes', 'internal', 'schema', 'offsets'],
        properties: {
          name: { type: 'string' },
          partitions: { type: 'integer', minimum: 1 },
          cleanupPolicy: { type: 'string', enum: ['delete', 'compact', 'compact,delete'] },
          retentionMs: { type: 'integer', nullable: true },
          retentionBytes: { type: 'integer', nullable: true },
          internal: { type: 'boolean' },
          schema: { allOf: [ref('SchemaRef')], nullable: true },
          offsets: {
            type: 'array',
            items: {
              type: 'object',
              required: ['partition', 'start', 'end'],
              properties: {
                partition: { type: 'integer', minimum: 0 },
                start: { type: 'integer', minimum: 0 },
                end: { type: 'integer', minimum: 0 },
              },
            },
          },
        },
      },
      CreateTopic: {
        type: 'object',
        required: ['name'],
        additionalProperties: false,
        properties: {
          name: { type: 'string', pattern: '^[a-zA-Z0-9._-]{1,249}$' },
          partitions: { type: 'integer', minimum: 1, maximum: 10000, default: 1 },
          schema: {
            description: 'The name of a folder of the schemas directory, or an Avro schema.',
            oneOf: [{ type: 'string', minLength: 1 }, { type: 'object' }, { type: 'array' }],
          },
          compacted: { type: 'boolean', default: false },
          retentionMs: { type: 'integer', minimum: 0, nullable: true },
          retentionBytes: { type: 'integer', minimum: 0, nullable: true },
        },
      },
      ProduceRecord: {
        type: 'object',
        required: ['value'],
        additionalProperties: false,
        properties: {
          key: { type: 'string', nullable: true },
          value: { description: 'Any JSON value; `null` is a tombstone.', nullable: true },
          timestamp: {
            description: 'Milliseconds since 1970, or an ISO 8601 date-time with a time zone.',
            oneOf: [{ type: 'integer', minimum: 0 }, { type: 'string', format: 'date-time' }],
          },
          headers: { type: 'object', additionalProperties: { type: 'string' } },
          partition: { type: 'integer', minimum: 0 },
        },
      },
      ProduceBody: {
        description: 'A batch, one record in its envelope, or a bare value.',
        anyOf: [
          {
            type: 'object',
            required: ['records'],
            additionalProperties: false,
            properties: { records: { type: 'array', items: ref('ProduceRecord') } },
          },
          ref('ProduceRecord'),
          { description: 'A bare value.' },
        ],
      },
      ProduceResult: {
        type: 'object',
        required: ['offsets'],
        properties: {
          offsets: {
            type: 'array',
            items: {
              type: 'object',
              required: ['partition', 'offset', 'timestamp'],
              properties: {
                partition: { type: 'integer', minimum: 0 },
                offset: { type: 'integer', minimum: 0 },
                timestamp: { type: 'string' },
              },
            },
          },
        },
      },
      Base64: {
        type: 'object',
        required: ['base64'],
        properties: { base64: { type: 'string' } },
      },
      ReadRecord: {
        type: 'object',
        required: ['topic', 'partition', 'offset', 'timestamp', 'key', 'value', 'headers'],
        properties: {
          topic: { type: 'string' },
          partition: { type: 'integer', minimum: 0 },
          offset: { type: 'integer', minimum: 0 },
          timestamp: { type: 'string' },
          key: { description: 'UTF-8 text, or the bytes in base64 when they are not.', anyOf: [{ type: 'string' }, ref('Base64')], nullable: true },
          value: { description: 'The decoded value.', nullable: true },
          headers: { type: 'object', additionalProperties: { anyOf: [{ type: 'string' }, ref('Base64')] } },
          error: { type: 'string', description: 'Why the value could not be decoded.' },
        },
      },
      ReadResult: {
        type: 'object',
        required: ['records', 'next', 'highWatermarks'],
        properties: {
          records: { type: 'array', items: ref('ReadRecord') },
          next: {
            type: 'object',
            description: 'By partition: the offset to continue from.',
            additionalProperties: { type: 'integer', minimum: 0 },
          },
          highWatermarks: {
            type: 'object',
            description: 'By partition: the offset the next record will get.',
            additionalProperties: { type: 'integer', minimum: 0 },
          },
        },
      },
      PartitionProgress: {
        type: 'object',
        required: ['topic', 'partition', 'position', 'end', 'lag'],
        properties: {
          topic: { type: 'string' },
          partition: { type: 'integer', minimum: 0 },
          position: { type: 'integer', minimum: 0, description: 'The next offset to apply.' },
          end: { type: 'integer', minimum: 0, description: 'The end offset of the partition when last read (of the range, for a replay).' },
          lag: { type: 'integer', minimum: 0, description: 'Records read but not yet applied: end − position.' },
        },
      },
      RunnerState: { type: 'string', enum: ['starting', 'running', 'caught-up', 'finished', 'stopped', 'failed'] },
      RunnerStatus: {
        type: 'object',
        required: ['name', 'namespace', 'state', 'partitions', 'lag', 'recordsApplied', 'deadLetters'],
        properties: {
          name: { type: 'string' },
          namespace: { type: 'string' },
          state: ref('RunnerState'),
          partitions: { type: 'array', items: ref('PartitionProgress') },
          lag: { type: 'integer', minimum: 0 },
          recordsApplied: { type: 'integer', minimum: 0 },
          deadLetters: { type: 'integer', minimum: 0 },
          expiredOps: { type: 'integer', minimum: 0 },
          error: { type: 'string' },
        },
      },
      RebuildStatus: {
        type: 'object',
        required: ['namespace', 'state', 'startedAt', 'progress'],
        properties: {
          namespace: { type: 'string', description: 'The generation being built: gen-2, gen-3, …' },
          state: { type: 'string', enum: ['running', 'switched', 'failed'] },
          startedAt: { type: 'string', format: 'date-time' },
          finishedAt: { type: 'string', format: 'date-time' },
          progress: ref('RunnerStatus'),
          error: { type: 'string' },
        },
      },
      ProjectionInfo: {
        type: 'object',
        required: ['name', 'topics', 'store', 'namespace', 'state', 'lag', 'partitions', 'recordsApplied', 'deadLetters', 'historyRetentionMs'],
        properties: {
          name: { type: 'string' },
          description: { type: 'string' },
          topics: { type: 'array', items: { type: 'string' } },
          topicPattern: { type: 'string', description: 'The source of the regular expression of topics it also consumes.' },
          store: { type: 'string', description: 'The kind of projection store: leveldb, cassandra.' },
          namespace: { type: 'string', description: 'The namespace that serves reads: live, or the generation of the last rebuild.' },
          state: ref('RunnerState'),
          lag: { type: 'integer', minimum: 0, description: 'Records of the source partitions read but not yet applied, in total.' },
          partitions: { type: 'array', items: ref('PartitionProgress') },
          recordsApplied: { type: 'integer', minimum: 0, description: 'Since the engine started.' },
          deadLetters: { type: 'integer', minimum: 0, description: 'Since the engine started.' },
          expiredOps: { type: 'integer', minimum: 0, description: 'Changes the store dropped as older than its retained history, since the engine started.' },
          historyRetentionMs: { type: 'integer', minimum: 0, description: 'How far behind the projection\'s latest event time `asOf` reads are answered.' },
          rebuild: ref('RebuildStatus'),
          error: { type: 'string' },
        },
      },
      ProjectionPage: {
        type: 'object',
        required: ['projection', 'namespace', 'items'],
        properties: {
          projection: { type: 'string' },
          namespace: { type: 'string' },
          asOf: { type: 'string', format: 'date-time', description: 'The `asOf` asked, when one was.' },
          items: {
            type: 'array',
            items: {
              type: 'object',
              required: ['key', 'value', 'validFrom'],
              properties: {
                key: { type: 'string' },
                value: jsonValue,
                validFrom: { type: 'string', format: 'date-time', description: 'The event time this value is valid from.' },
              },
            },
          },
          nextCursor: { type: 'string', description: 'Absent when the scan is complete.' },
        },
      },
      ProjectionEntry: {
        type: 'object',
        required: ['projection', 'key', 'value', 'validFrom'],
        properties: {
          projection: { type: 'string' },
          key: { type: 'string' },
          asOf: { type: 'string', format: 'date-time', description: 'The `asOf` asked, when one was.' },
          value: jsonValue,
          validFrom: { type: 'string', format: 'date-time', description: 'The event time this value is valid from.' },
        },
      },
      NotRetainedProblem: {
        allOf: [
          ref('Problem'),
          {
            type: 'object',
            required: ['retainedFrom'],
            properties: {
              projection: { type: 'string' },
              asOf: { type: 'string', format: 'date-time' },
              retainedFrom: { type: 'string', format: 'date-time', description: 'The earliest moment answered now.' },
            },
          },
        ],
      },
      ReplayBound: {
        description: 'An offset (the same in every partition) or an ISO 8601 date-time.',
        oneOf: [{ type: 'integer', minimum: 0 }, { type: 'string', minLength: 1 }],
      },
      ReplayRequest: {
        type: 'object',
        description: 'Names exactly one of `projection` and `topology` (else 400 MILLRACE_REPLAY_INVALID).',
        additionalProperties: false,
        properties: {
          projection: { type: 'string', minLength: 1, description: 'The projection to replay.' },
          topology: { type: 'string', minLength: 1, description: 'Or the application id of a running topology to replay.' },
          from: { allOf: [ref('ReplayBound')], description: 'The first record: from this offset, or the first at or after this time. Default: the start of the log.' },
          to: { allOf: [ref('ReplayBound')], description: 'The last record: up to this offset, or every record up to this time, inclusive. Default: the end the log has now.' },
          code: { type: 'string', minLength: 1, description: 'A module on the engine\'s machine with the code to replay with instead of the live code (a projection, or a topology).' },
        },
      },
      Replay: {
        type: 'object',
        required: ['id', 'kind', 'projection', 'namespace', 'state', 'request', 'createdAt', 'partitions', 'seededAsOfMs', 'diffAsOfMs', 'progress', 'steps', 'stepsTruncated', 'keysChanged'],
        properties: {
          id: { type: 'string' },
          kind: { type: 'string', enum: ['projection', 'topology'] },
          projection: { type: 'string', description: 'The projection replayed; for a topology, `topology.<application id>`, the sandbox\'s name in the projection store.' },
          namespace: { type: 'string', description: 'The sandbox namespace in the projection store.' },
          state: { type: 'string', enum: ['running', 'finished', 'failed', 'stopped', 'interrupted'] },
          request: ref('ReplayRequest'),
          createdAt: { type: 'string', format: 'date-time' },
          finishedAt: { type: 'string', format: 'date-time' },
          partitions: {
            type: 'array',
            items: {
              type: 'object',
              required: ['topic', 'partition', 'from', 'to', 'position'],
              properties: {
                topic: { type: 'string' },
                partition: { type: 'integer', minimum: 0 },
                from: { type: 'integer', minimum: 0 },
                to: { type: 'integer', minimum: 0, description: 'Exclusive.' },
                position: { type: 'integer', minimum: 0 },
              },
            },
          },
          seededAsOfMs: { type: 'integer', nullable: true, description: 'The sandbox started from live as of this time (ms); null when the slice starts at the log\'s start.' },
          diffAsOfMs: { type: 'integer', nullable: true, description: 'Live is read as of this time (ms) for the diff; null until a record was replayed.' },
          progress: {
            type: 'object',
            required: ['records', 'total', 'applied', 'errors', 'percent'],
            properties: {
              records: { type: 'integer', minimum: 0 },
              total: { type: 'integer', minimum: 0 },
              applied: { type: 'integer', minimum: 0 },
              errors: { type: 'integer', minimum: 0 },
              percent: { type: 'number', minimum: 0, maximum: 100 },
            },
          },
          steps: { type: 'integer', minimum: 0, description: 'Steps recorded.' },
          stepsTruncated: { type: 'boolean', description: 'More records were replayed than steps are kept for.' },
          keysChanged: { type: 'integer', minimum: 0 },
          error: { type: 'string' },
        },
      },
      ReplayStep: {
        type: 'object',
        required: ['seq', 'event', 'before', 'after', 'outputs'],
        properties: {
          seq: { type: 'integer', minimum: 0 },
          event: {
            type: 'object',
            required: ['topic', 'partition', 'offset', 'timestamp', 'key', 'value'],
            properties: {
              topic: { type: 'string' },
              partition: { type: 'integer', minimum: 0 },
              offset: { type: 'integer', minimum: 0 },
              timestamp: { type: 'string', format: 'date-time' },
              key: { type: 'string', nullable: true },
              value: { description: 'The decoded value; for a record that could not be decoded, its text.', nullable: true },
            },
          },
          before: { type: 'object', description: 'Each changed key\'s value before the event (null: absent); for a topology, keyed `<store>/<key as JSON>`.', additionalProperties: jsonValue },
          after: { type: 'object', description: 'Each changed key\'s value after the event (null: absent); for a topology, keyed `<store>/<key as JSON>`.', additionalProperties: jsonValue },
          outputs: {
            type: 'array',
            description: 'A projection\'s changes to its read model, or the records a topology produced.',
            items: {
              oneOf: [
                {
                  type: 'object',
                  required: ['type', 'key', 'timestamp'],
                  properties: {
                    type: { type: 'string', enum: ['put', 'del'] },
                    key: { type: 'string' },
                    value: jsonValue,
                    timestamp: { type: 'string', format: 'date-time' },
                  },
                },
                {
                  type: 'object',
                  required: ['topic', 'key', 'value', 'timestamp'],
                  properties: {
                    topic: { type: 'string' },
                    key: jsonValue,
                    value: jsonValue,
                    timestamp: { type: 'string', format: 'date-time' },
                  },
                },
              ],
            },
          },
          error: { allOf: [ref('Problem')], description: 'Why the record would have been dead-lettered.' },
          truncated: { type: 'boolean', description: 'The step was too large to keep: only its coordinates are.' },
        },
      },
      DiffEntry: {
        type: 'object',
        description: 'For a topology, `key` is `<output topic>/<record key as JSON>` and the values are the latest record values.',
        required: ['key', 'change', 'sandbox', 'live'],
        properties: {
          key: { type: 'string' },
          change: { type: 'string', enum: ['added', 'removed', 'changed'] },
          sandbox: jsonValue,
          live: jsonValue,
        },
      },
      Health: {
        type: 'object',
        required: ['status', 'state'],
        properties: {
          status: { type: 'string', enum: ['ok', 'degraded'] },
          state: { type: 'string' },
          version: { type: 'string' },
          startedAt: { type: 'string' },
          log: { type: 'string' },
          error: { type: 'string' },
          applications: {
            type: 'array',
            items: {
              type: 'object',
              required: ['applicationId', 'state'],
              properties: {
                applicationId: { type: 'string' },
                state: { type: 'string' },
                error: { type: 'string', nullable: true },
              },
            },
          },
        },
      },
      EngineStatus: {
        type: 'object',
        required: ['state', 'startedAt', 'version', 'log', 'applications'],
        properties: {
          state: { type: 'string', enum: ['starting', 'running', 'stopping', 'stopped', 'failed'] },
          startedAt: { type: 'string' },
          version: { type: 'string' },
          log: {
            type: 'object',
            required: ['kind', 'location'],
            properties: { kind: { type: 'string', enum: ['embedded', 'kafka'] }, location: { type: 'string' } },
          },
          applications: {
            type: 'array',
            items: {
              type: 'object',
              required: ['applicationId', 'state', 'tasks', 'error'],
              properties: {
                applicationId: { type: 'string' },
                state: { type: 'string' },
                error: { type: 'string', nullable: true },
                tasks: {
                  type: 'array',
                  items: {
                    type: 'object',
                    required: ['taskId', 'state', 'inputs', 'processed', 'deadLettered', 'commits', 'streamTime', 'watermark', 'error', 'recordsPerSecond', 'latencyMs', 'nodes'],
                    properties: {
                      taskId: { type: 'string' },
                      subtopology: { type: 'integer' },
                      partition: { type: 'integer' },
                      state: { type: 'string', enum: ['created', 'restoring', 'running', 'stopped', 'failed'] },
                      inputs: {
                        type: 'array',
                        items: {
                          type: 'object',
                          required: ['topic', 'partition', 'position', 'committed', 'highWatermark', 'lag', 'lagSeconds', 'stalledForMs', 'stalled'],
                          properties: {
                            topic: { type: 'string' },
                            partition: { type: 'integer' },
                            position: { type: 'integer', description: 'Next offset the task will process.' },
                            committed: { type: 'integer', description: 'Next offset committed by the last checkpoint.' },
                            highWatermark: { type: 'integer' },
                            lag: { type: 'integer', description: 'Records behind the end of the partition.' },
                            lagSeconds: { type: 'number', nullable: true, description: 'Now minus the timestamp of the next record to process, when behind.' },
                            stalledForMs: { type: 'integer', description: 'How long the position has not moved while behind.' },
                            stalled: { type: 'boolean', description: 'Not moved for 30 s while behind: stuck on the record at `position`.' },
                            lagTrend: { type: 'array', items: { type: 'integer' }, description: 'Lag in records every 5 s, oldest first, up to ten minutes.' },
                          },
                        },
                      },
                      processed: { type: 'integer' },
                      deadLettered: { type: 'integer' },
                      commits: { type: 'integer' },
                      restoredRecords: { type: 'integer' },
                      lastCommitAt: { type: 'string', nullable: true },
                      streamTime: { type: 'string', nullable: true },
                      watermark: { type: 'string', nullable: true, description: 'Event time up to which windows may close.' },
                      error: { type: 'string', nullable: true },
                      recordsPerSecond: { type: 'number', description: 'Over the last ten seconds of checkpoints.' },
                      latencyMs: {
                        type: 'object',
                        nullable: true,
                        description: 'From taking a checkpoint\'s first record to the checkpoint being durable, over the most recent checkpoints.',
                        properties: { p50: { type: 'number' }, p95: { type: 'number' }, p99: { type: 'number' }, samples: { type: 'integer' } },
                      },
                      nodes: {
                        type: 'array',
                        items: {
                          type: 'object',
                          required: ['node', 'records'],
                          properties: {
                            node: { type: 'string' },
                            records: { type: 'integer', description: 'Records the node received since the task started.' },
                            openWindows: { type: 'integer', description: 'Windowed operators: store entries with windows waiting to close.' },
                            nextWindowCloseAt: { type: 'string', nullable: true },
                          },
                        },
                      },
                    },
                  },
                },
              },
            },
          },
        },
      },
    },
  },
});
