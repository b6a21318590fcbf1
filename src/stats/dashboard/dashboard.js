/*
 * The auditors' dashboard. Plain browser JavaScript, no build step: it reads /api/stats/* with
 * the key the auditor signed in with. The key lives only in sessionStorage (this tab, until it
 * closes): never localStorage, never a cookie, so no other page or request ever carries it.
 * Every figure comes from the API as is; the page computes no statistics of its own.
 */
'use strict';

(() => {
  const KEY_STORE = 'snode.dashboard.key';
  const numbers = new Intl.NumberFormat('zh-CN');
  const $ = (id) => document.getElementById(id);
  const byTestId = (id) => document.querySelector(`[data-testid="${id}"]`);

  class ApiError extends Error {
    constructor(status, code, message, requestId) {
      super(message);
      this.status = status;
      this.code = code;
      this.requestId = requestId;
    }
  }

  const state = {
    overview: null,
    granularity: 'month',
    /** true once the auditor applied their own from/to; otherwise the API's default range. */
    customRange: false,
    charts: { registrations: null, resolutions: null },
    seriesRequest: 0,
    topRequest: 0,
  };

  // ---- API ---------------------------------------------------------------------------------

  async function api(path, options = {}) {
    const key = options.key ?? sessionStorage.getItem(KEY_STORE);
    let response;
    try {
      response = await fetch(path, {
        headers: { authorization: `Bearer ${key}`, accept: options.accept ?? 'application/json' },
        cache: 'no-store',
        credentials: 'omit',
      });
    } catch {
      throw new ApiError(0, 'NETWORK', '无法连接节点 Cannot reach the node', null);
    }
    if (!response.ok) {
      let body = null;
      try {
        body = await response.json();
      } catch {
        // not JSON: fall back to the status line
      }
      const error = body && body.error ? body.error : {};
      throw new ApiError(response.status, error.code || `HTTP_${response.status}`,
        error.message || response.statusText || `HTTP ${response.status}`,
        error.requestId || response.headers.get('x-request-id'));
    }
    return response;
  }

  const getJson = async (path, options) => (await api(path, options)).json();

  function describe(error) {
    if (!(error instanceof ApiError)) return String(error && error.message ? error.message : error);
    const ref = error.requestId ? `，请求号 request ${error.requestId}` : '';
    return `${error.message}（${error.code}${ref}）`;
  }

  // ---- Session -----------------------------------------------------------------------------

  function showLogin(message) {
    $('dashboard').hidden = true;
    byTestId('session').hidden = true;
    byTestId('scope').hidden = true;
    $('login').hidden = false;
    const box = byTestId('login-error');
    box.textContent = message || '';
    box.hidden = !message;
    $('key').focus();
  }

  function signOut(message) {
    sessionStorage.removeItem(KEY_STORE);
    for (const name of Object.keys(state.charts)) {
      if (state.charts[name]) state.charts[name].destroy();
      state.charts[name] = null;
    }
    state.overview = null;
    state.customRange = false;
    showLogin(message);
  }

  function loginMessage(error) {
    if (error instanceof ApiError && error.status === 401) {
      return `密钥无效、已吊销或已过期。The key is unknown, revoked or expired.（${error.code}）`;
    }
    if (error instanceof ApiError && error.status === 403) {
      return `此密钥无权查看统计。This key may not read statistics.（${error.code}）`;
    }
    return `登录失败 Sign-in failed: ${describe(error)}`;
  }

  /** Any failure after sign-in: a refused key ends the session, anything else shows a banner. */
  function fail(error) {
    if (error instanceof ApiError && error.status === 401) {
      signOut(`会话已失效，请重新登录。The key is no longer accepted; sign in again.（${error.code}）`);
      return;
    }
    const banner = byTestId('error');
    banner.textContent = describe(error);
    banner.hidden = false;
  }

  function clearError() {
    byTestId('error').hidden = true;
  }

  async function signIn(event) {
    event.preventDefault();
    const input = $('key');
    const key = input.value.trim();
    if (!key) {
      showLogin('请输入 API 密钥。Enter an API key.');
      return;
    }
    const button = byTestId('sign-in');
    button.disabled = true;
    try {
      // Checked before it is stored: a wrong key never lands in session storage.
      const overview = await getJson('/api/stats/overview', { key });
      sessionStorage.setItem(KEY_STORE, key);
      input.value = '';
      await open(overview);
    } catch (error) {
      showLogin(loginMessage(error));
    } finally {
      button.disabled = false;
    }
  }

  // ---- Periods (from the node's own calendar day, never the browser's clock) ---------------

  const pad = (n) => String(n).padStart(2, '0');
  const quarterOf = (year, month) => ({ year, quarter: Math.floor((month - 1) / 3) + 1 });

  function monthsBack(today, count) {
    let year = Number(today.slice(0, 4));
    let month = Number(today.slice(5, 7));
    const out = [];
    for (let i = 0; i < count; i += 1) {
      out.push(`${year}-${pad(month)}`);
      month -= 1;
      if (month === 0) {
        month = 12;
        year -= 1;
      }
    }
    return out;
  }

  function quartersBack(today, count) {
    let { year, quarter } = quarterOf(Number(today.slice(0, 4)), Number(today.slice(5, 7)));
    const out = [];
    for (let i = 0; i < count; i += 1) {
      out.push(`${year}-Q${quarter}`);
      quarter -= 1;
      if (quarter === 0) {
        quarter = 4;
        year -= 1;
      }
    }
    return out;
  }

  function fillSelect(select, options, selected) {
    const keep = select.value;
    select.replaceChildren(...options.map(([value, label]) => {
      const option = document.createElement('option');
      option.value = value;
      option.textContent = label;
      return option;
    }));
    const values = options.map(([value]) => value);
    select.value = values.includes(keep) ? keep : selected;
  }

  function fillPeriods(today) {
    const months = monthsBack(today, 6);
    const quarters = quartersBack(today, 4);
    const year = today.slice(0, 4);
    fillSelect($('top-period'), [
      [today, `${today} 今日 Today`],
      [months[0], `${months[0]} 本月 This month`],
      [months[1], `${months[1]} 上月 Last month`],
      [quarters[0], `${quarters[0]} 本季度 This quarter`],
      [quarters[1], `${quarters[1]} 上季度 Last quarter`],
      [year, `${year} 本年 This year`],
    ], months[0]);
    fillSelect($('report-period'), [
      ...quarters.map((q, i) => [q, i === 0 ? `${q} 本季度 This quarter` : i === 1 ? `${q} 上季度 Last quarter` : q]),
      ...months.map((m, i) => [m, i === 0 ? `${m} 本月 This month` : i === 1 ? `${m} 上月 Last month` : m]),
    ], quarters[0]);
  }

  // ---- Overview ----------------------------------------------------------------------------

  function renderOverview(overview) {
    state.overview = overview;
    // Each cell names its figure: data-testid="overview-resolutions-month-notFound" is
    // overview.resolutions.month.notFound.
    for (const cell of document.querySelectorAll('[data-testid^="overview-"]')) {
      const path = cell.dataset.testid.slice('overview-'.length).split('-');
      const value = path.reduce((node, part) => (node == null ? undefined : node[part]), overview);
      cell.dataset.value = typeof value === 'number' ? String(value) : '';
      cell.textContent = typeof value === 'number' ? numbers.format(value) : '–';
    }
    byTestId('today').textContent = `${overview.today} · ${overview.timeZone}`;
    const scope = byTestId('scope');
    scope.textContent = `时区 Time zone ${overview.timeZone} · 今日 Today ${overview.today}`;
    scope.hidden = false;
    fillPeriods(overview.today);
  }

  // ---- Charts and series table -------------------------------------------------------------

  const REGISTRATION_SERIES = [
    { key: 'creates', label: '新注册 Creates', stroke: '#0969da' },
    { key: 'updates', label: '更新 Updates', stroke: '#8250df' },
    { key: 'deletes', label: '删除 Deletes', stroke: '#cf222e' },
  ];
  const RESOLUTION_SERIES = [
    { key: 'total', label: '合计 Total', stroke: '#24292f', width: 2 },
    { key: 'found', label: '命中 Found', stroke: '#1a7f37' },
    { key: 'notFound', label: '未找到 Not found', stroke: '#cf222e' },
    { key: 'cached', label: '缓存 Cached', stroke: '#bf8700' },
  ];
  const WHOLE_STEPS = [1, 2, 3, 4, 5, 6, 7, 10, 14, 15, 20, 25, 30, 50, 100, 200, 500, 1000, 2000, 5000, 1e4, 2e4, 5e4,
    1e5, 2e5, 5e5, 1e6, 2e6, 5e6, 1e7, 2e7, 5e7, 1e8, 2e8, 5e8, 1e9];

  function chartWidth(container) {
    return Math.max(280, container.clientWidth || container.parentElement.clientWidth || 600);
  }

  function drawChart(name, container, body, defs) {
    if (state.charts[name]) state.charts[name].destroy();
    state.charts[name] = null;
    container.replaceChildren();
    const labels = body.series.map((bucket) => bucket.period);
    container.dataset.granularity = body.granularity;
    container.dataset.buckets = String(labels.length);
    container.dataset.from = body.from;
    container.dataset.to = body.to;
    if (typeof window.uPlot !== 'function') {
      container.textContent = '图表库未加载 The chart library did not load; see the data table.';
      return;
    }
    const x = labels.map((_, i) => i);
    const data = [x, ...defs.map((d) => body.series.map((bucket) => bucket[d.key]))];
    const label = (i) => (Number.isInteger(i) && labels[i] !== undefined ? labels[i] : '');
    const options = {
      width: chartWidth(container),
      height: 260,
      scales: {
        // Buckets are categories (periods in the node's time zone), not instants in the browser's.
        x: { time: false, range: () => [-0.5, Math.max(labels.length - 0.5, 0.5)] },
        y: { range: (_u, _min, max) => [0, max > 0 ? Math.ceil(max * 1.15) : 1] },
      },
      axes: [
        { incrs: WHOLE_STEPS, space: body.granularity === 'day' ? 70 : 50, values: (_u, splits) => splits.map(label) },
        { incrs: WHOLE_STEPS, size: 60, values: (_u, splits) => splits.map((v) => (Number.isInteger(v) ? numbers.format(v) : '')) },
      ],
      series: [
        { label: '周期 Period', value: (_u, i) => label(i) },
        ...defs.map((d) => ({
          label: d.label,
          stroke: d.stroke,
          width: d.width || 1.5,
          points: { show: true, size: 5 },
          value: (_u, v) => (v == null ? '–' : numbers.format(v)),
        })),
      ],
      legend: { live: true },
      cursor: { drag: { x: false, y: false } },
    };
    state.charts[name] = new window.uPlot(options, data, container);
  }

  function renderSeriesTable(registrations, resolutions) {
    const rows = registrations.series.map((bucket, i) => {
      const r = resolutions.series[i] || {};
      const tr = document.createElement('tr');
      tr.dataset.testid = 'series-row';
      const cells = [bucket.period, bucket.creates, bucket.updates, bucket.deletes, r.found, r.notFound, r.cached, r.total];
      cells.forEach((value, c) => {
        const td = document.createElement(c === 0 ? 'th' : 'td');
        td.textContent = c === 0 ? value : typeof value === 'number' ? numbers.format(value) : '–';
        if (c === 0) td.scope = 'row';
        tr.append(td);
      });
      return tr;
    });
    $('series-body').replaceChildren(...rows);
    const table = byTestId('series-table');
    table.dataset.granularity = registrations.granularity;
    table.dataset.rows = String(rows.length);
  }

  async function loadSeries() {
    const request = ++state.seriesRequest;
    const params = new URLSearchParams({ granularity: state.granularity });
    if (state.customRange) {
      if ($('from').value) params.set('from', $('from').value);
      if ($('to').value) params.set('to', $('to').value);
    }
    const [registrations, resolutions] = await Promise.all([
      getJson(`/api/stats/registrations?${params}`),
      getJson(`/api/stats/resolutions?${params}`),
    ]);
    // A slower answer to an earlier choice must not overwrite the latest one.
    if (request !== state.seriesRequest) return;
    $('from').value = registrations.from;
    $('to').value = registrations.to;
    drawChart('registrations', $('chart-registrations'), registrations, REGISTRATION_SERIES);
    drawChart('resolutions', $('chart-resolutions'), resolutions, RESOLUTION_SERIES);
    renderSeriesTable(registrations, resolutions);
  }

  // ---- Top enterprises ---------------------------------------------------------------------

  async function loadTop() {
    const request = ++state.topRequest;
    const metric = $('top-metric').value;
    const period = $('top-period').value;
    const body = await getJson(`/api/stats/top?${new URLSearchParams({ metric, period, limit: '10' })}`);
    if (request !== state.topRequest) return;
    $('top-value-label').textContent = metric === 'registrations' ? '新注册 Creates' : '解析次数 Resolutions';
    const rows = body.items.map((item, i) => {
      const tr = document.createElement('tr');
      tr.dataset.testid = 'top-row';
      tr.dataset.enterpriseId = item.enterpriseId;
      const cells = [
        [String(i + 1), ''],
        [item.name, 'text'],
        [item.uscc, 'mono'],
        [numbers.format(item.value), ''],
      ];
      for (const [text, cls] of cells) {
        const td = document.createElement('td');
        td.textContent = text;
        if (cls) td.className = cls;
        tr.append(td);
      }
      tr.lastChild.dataset.value = String(item.value);
      return tr;
    });
    $('top-body').replaceChildren(...rows);
    const table = byTestId('top-table');
    table.dataset.metric = body.metric;
    table.dataset.period = body.period;
    byTestId('top-empty').hidden = rows.length > 0;
  }

  // ---- Report download ---------------------------------------------------------------------

  function filenameFrom(disposition) {
    if (!disposition) return null;
    const star = /filename\*\s*=\s*UTF-8''([^;]+)/i.exec(disposition);
    if (star) {
      try {
        return decodeURIComponent(star[1].trim());
      } catch {
        // malformed: try the plain parameter
      }
    }
    const plain = /filename\s*=\s*"([^"]*)"|filename\s*=\s*([^;\s]+)/i.exec(disposition);
    return plain ? plain[1] || plain[2] : null;
  }

  async function downloadReport(event) {
    event.preventDefault();
    const period = $('report-period').value;
    const button = byTestId('download-csv');
    const status = byTestId('report-status');
    button.disabled = true;
    status.textContent = '正在生成… Preparing…';
    try {
      // fetch, not a link: a link cannot carry the Authorization header.
      const response = await api(`/api/stats/report?${new URLSearchParams({ period, format: 'csv' })}`, { accept: 'text/csv' });
      const blob = await response.blob();
      const name = filenameFrom(response.headers.get('content-disposition')) || `snode-report-${period}.csv`;
      const href = URL.createObjectURL(blob);
      const link = document.createElement('a');
      link.href = href;
      link.download = name;
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(href), 60_000);
      status.textContent = `已下载 Downloaded ${name}`;
    } catch (error) {
      status.textContent = '';
      fail(error);
    } finally {
      button.disabled = false;
    }
  }

  // ---- Wiring ------------------------------------------------------------------------------

  async function run(task) {
    try {
      await task();
    } catch (error) {
      fail(error);
    }
  }

  async function refreshAll(overview) {
    clearError();
    renderOverview(overview || (await getJson('/api/stats/overview')));
    await Promise.all([loadSeries(), loadTop()]);
  }

  async function open(overview) {
    $('login').hidden = true;
    byTestId('login-error').hidden = true;
    $('dashboard').hidden = false;
    byTestId('session').hidden = false;
    $('granularity').value = state.granularity;
    await run(() => refreshAll(overview));
  }

  function resizeCharts() {
    for (const [name, chart] of Object.entries(state.charts)) {
      if (chart) chart.setSize({ width: chartWidth($(`chart-${name}`)), height: 260 });
    }
  }

  function start() {
    $('login-form').addEventListener('submit', signIn);
    $('sign-out').addEventListener('click', () => signOut());
    $('refresh').addEventListener('click', () => run(() => refreshAll()));
    $('granularity').addEventListener('change', () => {
      state.granularity = $('granularity').value;
      run(loadSeries);
    });
    $('range').addEventListener('submit', (event) => {
      event.preventDefault();
      state.customRange = true;
      run(loadSeries);
    });
    $('reset-range').addEventListener('click', () => {
      state.customRange = false;
      run(loadSeries);
    });
    $('top-metric').addEventListener('change', () => run(loadTop));
    $('top-period').addEventListener('change', () => run(loadTop));
    $('report-form').addEventListener('submit', downloadReport);
    let resizeTimer = 0;
    window.addEventListener('resize', () => {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(resizeCharts, 150);
    });

    if (!sessionStorage.getItem(KEY_STORE)) {
      showLogin();
      return;
    }
    // A reload in the same tab keeps the session: check the stored key once more.
    getJson('/api/stats/overview').then(open, (error) => {
      if (error instanceof ApiError && (error.status === 401 || error.status === 403)) signOut(loginMessage(error));
      else showLogin(`无法加载统计 Could not load the statistics: ${describe(error)}`);
    });
  }

  start();
})();
