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

export const openApiDocument = Object.freeze({
  openapi: '3.0.3',
  info: {
    title: 'Millrace',
    version: '0.1.0',
    description:
      'The HTTP API of a Millrace engine: topics, producing and reading events, health, status, topologies and ' +
      'Prometheus metrics. Every error is an RFC 7807 problem document (application/problem+json) with a stable `code`.',
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
                tasks: { type: 'array', items: { type: 'object' } },
              },
            },
          },
        },
      },
    },
  },
});
