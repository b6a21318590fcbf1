/**
 * Examples for the OpenAPI document, by `METHOD url` as the route is registered: request bodies
 * and answers by status. openapi.ts attaches them to the route schemas; the OpenAPI test checks
 * that every JSON body and answer has one and that each matches its schema, so they cannot drift.
 * (Answers whose schema lists content types carry their examples in the route itself.)
 */
const AT = '2026-11-29T08:00:00.000Z';
const ENTERPRISE_ID = '0b6f3c1e-5d2a-4c8b-9e7f-1a2b3c4d5e6f';
const KEY_ID = '5a7d9c1b-2e4f-4a6b-8c0d-9e1f2a3b4c5d';
const APPLICATION_ID = 'c3d4e5f6-a7b8-4c9d-8e0f-1a2b3c4d5e6f';
const JOB_ID = '7e1f0c2d-3b4a-4c5d-9e6f-0a1b2c3d4e5f';

const enterprise = { id: ENTERPRISE_ID, name: '南京示例制造有限公司', uscc: '91320115MA1WXY7Q4L', createdAt: AT, prefixes: ['88.118.8'] };
const prefix = { prefix: '88.118.8', enterpriseId: ENTERPRISE_ID, state: 'active', createdAt: AT };
const apiKey = {
  id: KEY_ID,
  hint: 'snk_Xq3v',
  role: 'enterprise',
  enterpriseId: ENTERPRISE_ID,
  label: 'line 3',
  createdAt: AT,
  expiresAt: null,
  revokedAt: null,
  lastUsedAt: '2026-11-29T09:12:00.000Z',
  prefixes: null,
};
const newKey = { ...apiKey, lastUsedAt: null, key: 'snk_Xq3vJ8m0dW4yR2tP6sL1aK9eH5uC7bN3fG0iQ2oV8zY' };
const application = {
  id: APPLICATION_ID,
  name: '南京示例制造有限公司',
  uscc: '91320115MA1WXY7Q4L',
  contact: { name: '张工', email: 'zhang@example.com', phone: '+86 25 8888 0000' },
  industryCode: 'C3562',
  requestedPrefix: '88.118.9',
  state: 'pending',
  reason: null,
  enterpriseId: null,
  prefix: null,
  createdAt: AT,
  decidedAt: null,
};
const applicationStatus = { id: APPLICATION_ID, state: 'pending', reason: null, prefix: null, createdAt: AT, decidedAt: null };
const auditEntry = {
  id: '1234',
  seq: '1234',
  at: AT,
  actorKey: KEY_ID,
  actorRole: 'enterprise',
  action: 'identifier.create',
  target: '88.118.8/PART-0001',
  requestId: '6f1c2a9e-3b7d-4e58-9a41-0c2d8e7f5b13',
  clientIp: '10.1.2.3',
  beforeDigest: null,
  afterDigest: '9f36c1f0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c',
  detail: { version: 1 },
};
const registrations = { creates: 120, updates: 31, deletes: 5 };
const resolutions = { found: 4821, notFound: 37, cached: 4700, total: 4858 };
const job = {
  id: JOB_ID,
  prefix: '88.118.8',
  format: 'csv',
  mode: 'upsert',
  state: 'running',
  bytes: 52428800,
  linesRead: 450000,
  written: 449981,
  rejected: 19,
  error: null,
  createdAt: AT,
  updatedAt: '2026-11-29T08:01:30.000Z',
  finishedAt: null,
  links: { self: `/api/imports/${JOB_ID}`, rejected: `/api/imports/${JOB_ID}/rejected` },
};
const urlValue = (value: string) => ({ index: 1, type: 'URL', data: { format: 'string', value } });
const batchAnswer = {
  responseCode: 1,
  mode: 'partial',
  applied: true,
  counts: { created: 1, updated: 1, deleted: 0, failed: 1 },
  results: [
    { responseCode: 1, handle: '88.118.8/PART-0002', op: 'create', status: 201, version: 1 },
    { responseCode: 1, handle: '88.118.8/PART-0001', op: 'update', status: 200, version: 2 },
    { responseCode: 100, handle: '88.118.8/PART-0000', op: 'delete', status: 404, code: 'HANDLE_NOT_FOUND', message: 'handle 88.118.8/PART-0000 not found' },
  ],
};
const failedAtomic = {
  responseCode: 101,
  mode: 'atomic',
  applied: false,
  counts: { created: 0, updated: 0, deleted: 0, failed: 2 },
  results: [
    { responseCode: 101, handle: '88.118.8/PART-0001', op: 'create', status: 409, code: 'HANDLE_ALREADY_EXISTS', message: 'handle 88.118.8/PART-0001 already exists' },
    { responseCode: 2, handle: '88.118.8/PART-0003', op: 'create', status: 200, code: 'NOT_APPLIED', message: 'not applied: another item of the atomic batch failed' },
  ],
};
const auditList = { items: [auditEntry] };
const federationNode = {
  nodeId: 'node-a',
  nodePrefix: '88.118',
  algorithm: 'ed25519',
  baseUrl: 'https://snode-a.example.com',
  version: '0.1.0',
  state: 'up',
  lastHeartbeatAt: '2026-11-29T08:59:58.000Z',
  ackedSeq: 104233,
  backlog: 0,
  oldestUnsentAgeS: 0,
  identifiers: 1200345,
  registrationsToday: 5321,
  resolutionsToday: 1893422,
  registeredAt: AT,
};

export const BODY_EXAMPLES: Record<string, unknown> = {
  'POST /api/admin/enterprises': { name: '南京示例制造有限公司', uscc: '91320115MA1WXY7Q4L' },
  'POST /api/admin/enterprises/:id/prefixes': { prefix: '88.118.8' },
  'PATCH /api/admin/prefixes/:prefix': { state: 'disabled' },
  'POST /api/admin/keys': { role: 'enterprise', enterpriseId: ENTERPRISE_ID, label: 'line 3', prefixes: ['88.118.8'] },
  'POST /api/keys': { label: 'line 4 scanner', prefixes: ['88.118.8'] },
  'POST /api/admin/applications/:id/reject': { reason: '营业执照与名称不符' },
  'POST /api/enterprises/apply': {
    name: '南京示例制造有限公司',
    uscc: '91320115MA1WXY7Q4L',
    contact: { name: '张工', email: 'zhang@example.com', phone: '+86 25 8888 0000' },
    industryCode: 'C3562',
    requestedPrefix: '88.118.9',
  },
  'PUT /api/handles/*': {
    values: [
      urlValue('https://example.com/parts/0001'),
      { index: 2, type: 'EMAIL', data: { format: 'string', value: 'qa@example.com' }, permissions: '1100' },
      { index: 2001, type: 'product.name', data: { format: 'string', value: '轴承 6205-2RS' }, ttl: 3600 },
    ],
  },
  'POST /api/handles/batch': {
    mode: 'partial',
    operations: [
      { op: 'create', handle: '88.118.8/PART-0002', values: [urlValue('https://example.com/p/2')] },
      { op: 'update', handle: '88.118.8/PART-0001', version: 1, values: [urlValue('https://example.com/p/1b')] },
      { op: 'delete', handle: '88.118.8/PART-0000' },
    ],
  },
  'POST /api/resolve': { handles: ['88.118.8/PART-0001', '88.118.8/NO-SUCH', 'not a handle'] },
  'POST /bench/seed': { prefix: '88.118.1', count: 100000 },
  'POST /bench/seed-stats': { enterprises: 1000, identifiersPerPrefix: 1000, days: 730 },
  'POST /bench/copy': { mode: 'partial', operations: [{ handle: '88.118.1/COPY-0', values: [urlValue('https://example.com/c/0')] }] },
};

export const RESPONSE_EXAMPLES: Record<string, Record<string, unknown>> = {
  'GET /healthz': { 200: { status: 'ok', nodeId: 'snode-1' } },
  'GET /readyz': {
    200: { status: 'ready', nodeId: 'snode-1', postgres: 'up', cache: 'up' },
    503: { status: 'not ready', nodeId: 'snode-1', postgres: 'down', cache: 'up' },
  },
  'POST /api/admin/enterprises': { 201: { ...enterprise, prefixes: [] } },
  'GET /api/admin/enterprises': { 200: { items: [enterprise] } },
  'GET /api/admin/enterprises/:id': { 200: enterprise },
  'POST /api/admin/enterprises/:id/prefixes': { 201: prefix },
  'GET /api/admin/prefixes': { 200: { items: [prefix] } },
  'PATCH /api/admin/prefixes/:prefix': { 200: { ...prefix, state: 'disabled' } },
  'POST /api/admin/keys': { 201: { ...newKey, prefixes: ['88.118.8'] } },
  'GET /api/admin/keys': { 200: { items: [apiKey] } },
  'DELETE /api/admin/keys/:id': { 200: { ...apiKey, revokedAt: '2026-11-29T10:00:00.000Z' } },
  'GET /api/admin/applications': { 200: { items: [application] } },
  'POST /api/admin/applications/:id/approve': {
    200: {
      application: { ...application, state: 'approved', enterpriseId: ENTERPRISE_ID, prefix: '88.118.9', decidedAt: '2026-11-29T10:00:00.000Z' },
      enterprise: { ...enterprise, prefixes: ['88.118.9'] },
      prefix: { ...prefix, prefix: '88.118.9' },
      key: { ...newKey, label: 'first key' },
    },
  },
  'POST /api/admin/applications/:id/reject': { 200: { ...application, state: 'rejected', reason: '营业执照与名称不符', decidedAt: '2026-11-29T10:00:00.000Z' } },
  'POST /api/enterprises/apply': { 201: applicationStatus },
  'GET /api/enterprises/applications/:id': { 200: { ...applicationStatus, state: 'approved', prefix: '88.118.9', decidedAt: '2026-11-29T10:00:00.000Z' } },
  'GET /api/audit': { 200: auditList },
  'GET /api/audit/': { 200: auditList },
  'GET /api/keys': { 200: { items: [apiKey] } },
  'POST /api/keys': { 201: { ...newKey, label: 'line 4 scanner', prefixes: ['88.118.8'] } },
  'DELETE /api/keys/:id': { 200: { ...apiKey, revokedAt: '2026-11-29T10:00:00.000Z' } },
  'GET /api/audit/head': { 200: { head: { seq: '1234', hash: '9f36c1f0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c', anchor: '1234:9f36c1f0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c', at: AT, sealedAt: '2026-11-29T08:00:01.000Z' } } },
  'GET /api/audit/verify': { 200: { ok: true, checked: 1234, head: { seq: '1234', hash: '9f36c1f0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c' }, unsealed: 0 } },
  'GET /api/stats/overview': {
    200: {
      timeZone: 'Asia/Shanghai',
      today: '2026-11-29',
      identifiers: 1200345,
      enterprises: 42,
      prefixes: { active: 45, disabled: 1 },
      registrations: { today: registrations, month: { creates: 3400, updates: 812, deletes: 77 }, quarter: { creates: 9100, updates: 2051, deletes: 190 } },
      resolutions: { today: resolutions, month: { found: 150211, notFound: 902, cached: 148000, total: 151113 }, quarter: { found: 410022, notFound: 2210, cached: 401000, total: 412232 } },
    },
  },
  'GET /api/stats/registrations': {
    200: { metric: 'registrations', granularity: 'month', from: '2026-10-01', to: '2026-11-30', series: [{ period: '2026-10', start: '2026-10-01', ...registrations }, { period: '2026-11', start: '2026-11-01', creates: 98, updates: 12, deletes: 1 }] },
  },
  'GET /api/stats/resolutions': {
    200: { metric: 'resolutions', granularity: 'day', from: '2026-11-28', to: '2026-11-29', series: [{ period: '2026-11-28', start: '2026-11-28', ...resolutions }, { period: '2026-11-29', start: '2026-11-29', found: 1203, notFound: 4, cached: 1180, total: 1207 }] },
  },
  'GET /api/stats/top': { 200: { metric: 'resolutions', period: '2026-11', from: '2026-11-01', to: '2026-11-30', items: [{ enterpriseId: ENTERPRISE_ID, name: '南京示例制造有限公司', uscc: '91320115MA1WXY7Q4L', value: 150211 }] } },
  'PUT /api/handles/*': { 200: { responseCode: 1, handle: '88.118.8/PART-0001' }, 201: { responseCode: 1, handle: '88.118.8/PART-0001' } },
  'DELETE /api/handles/*': { 200: { responseCode: 1, handle: '88.118.8/PART-0001' } },
  'GET /api/handles': { 200: { responseCode: 1, prefix: '88.118.8', totalCount: 1200, page: 0, pageSize: 2, handles: ['88.118.8/PART-0001', '88.118.8/PART-0002'] } },
  'POST /api/handles/batch': { 200: batchAnswer, 400: failedAtomic, 403: failedAtomic, 404: failedAtomic, 409: failedAtomic, 412: failedAtomic },
  'POST /api/imports': { 202: { ...job, state: 'queued', linesRead: 0, written: 0, rejected: 0, updatedAt: AT } },
  'GET /api/imports/:id': { 200: job },
  'GET /federation/v1/nodes': { 200: { nodes: [federationNode] } },
  'GET /api/federation/status': {
    200: {
      role: 'secondary',
      nodeId: 'node-a',
      nodePrefix: '88.118',
      upstream: {
        urls: ['https://top.example.cn', 'https://nanjing-dr.example.cn'],
        current: 'https://top.example.cn',
        currentIndex: 0,
        consecutiveFailures: 0,
        lastError: null,
        lastSuccessAt: '2026-11-29T08:59:58.000Z',
        failovers: 0,
      },
      outbox: { backlog: 3, oldestUnsentAgeS: 0, ackedSeq: 104233, nextSeq: 104237 },
      sender: { leader: true, ackedSeq: 104233, sentBatches: 2210, sentEvents: 104233, consecutiveFailures: 0, lastError: null },
      heartbeat: { lastSentAt: '2026-11-29T08:59:58.000Z', lastError: null },
    },
  },
  'POST /bench/seed': { 200: { prefix: '88.118.1', first: '88.118.1/BENCH-0', count: 100000, inserted: 100000 } },
  'POST /bench/seed-stats': { 200: { enterprises: 1000, prefixes: 1000, identifiers: 1000000, days: 730 } },
  'GET /bench/count-identifiers': { 200: { identifiers: 1000000 } },
  'POST /bench/copy': { 200: { copied: 1000 } },
  'DELETE /bench/copy': { 200: { dropped: 'bench_copy_scratch' } },
};

