/* dask-blessing report: plots (BokehJS) and tables from the JSON each page embeds.
 * Pages open from disk (file://), where fetch() of local files is refused: the data lives in
 * <script type="application/json" id="..."> elements. Each plot container gets data-rendered="true" and
 * data-points="N" once BokehJS has drawn it (the browser test waits for these). */
"use strict";

(function () {
  const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22",
    "#7f7f7f", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd", "#e6550d", "#31a354",
    "#756bb1", "#636363", "#6baed6"];
  const FAILURE = "#d62728";
  const CHANGE = {regression: "#d62728", improvement: "#2ca02c"};
  const ACCEPTED = "#8c8c8c";
  const VERDICT = {regressed: "#d62728", improved: "#2ca02c", unchanged: "#7f7f7f", inconclusive: "#e6a100"};

  function readJSON(id) {
    const element = document.getElementById(id);
    return element ? JSON.parse(element.textContent) : null;
  }

  function bytes(value) {
    let size = value;
    for (const unit of ["B", "KiB", "MiB", "GiB"]) {
      if (Math.abs(size) < 1024) return unit === "B" ? `${size.toFixed(0)} B` : `${size.toFixed(1)} ${unit}`;
      size /= 1024;
    }
    return `${size.toFixed(1)} TiB`;
  }

  function show(unit, value) {
    if (value === null || value === undefined || !isFinite(value)) return "–";
    return unit === "s" ? `${Number(value.toPrecision(3))} s` : bytes(value);
  }

  function markRendered(target, points) {
    target.dataset.points = String(points);
    target.dataset.rendered = "true";
  }

  // ---- history of a workload: one line per runtime × hardware (× case), along dates or versions ----------

  // The series the regression scan judges: along dates one per runtime × hardware × case; along versions one per
  // hardware × case, the runs of every runtime ordered by the package's version (then by date).
  function historySeries(points, meta, axis) {
    const n = points.run_id.length;
    const cases = new Set(points.case_id), sizes = new Set(points.size), hardware = new Set(points.hardware);
    const machines = new Set(points.machine_class);  // a series is per hardware × machine class, as the scan's
    const series = new Map();
    for (let i = 0; i < n; i++) {
      const parts = axis === "date" ? [points.runtime[i]] : [];
      if (hardware.size > 1) parts.push(points.hardware[i]);
      if (machines.size > 1) parts.push("machine " + points.machine_class[i]);
      if (cases.size > 1 || axis === "version") parts.push(points.case_id[i]);
      if (sizes.size > 1 && points.size[i]) parts.push(points.size[i]);
      const base = parts.join(" · ");
      // The runs of an A/B comparison (interleaved rounds) are a series of their own, hidden until asked for.
      const label = points.compare[i] ? `${base} · A/B comparison runs` : base;
      if (!series.has(label)) {
        series.set(label, {label, base, compare: Boolean(points.compare[i]), rows: [],
          key: axis === "date" ? bandKey(points, i) : null});
      }
      series.get(label).rows.push(i);
    }
    const ordered = [...series.values()].sort((a, b) => a.label.localeCompare(b.label));
    const rank = new Map(meta.versions.map((version, position) => [version, position]));
    const colors = new Map();
    for (const s of ordered) if (!colors.has(s.base)) colors.set(s.base, PALETTE[colors.size % PALETTE.length]);
    ordered.forEach((s) => {
      s.color = colors.get(s.base);  // a comparison's runs in the colour of their history
      s.measured = s.rows.filter((i) => meta.metrics.some((m) => points[m.name][i] !== null)).length;
      s.rows.sort((a, b) => points.t[a] - points.t[b]);
      if (axis === "date") {
        s.x = new Map(s.rows.map((i) => [i, points.t[i]]));
        return;
      }
      // Each release at an integer, its runs spread over [rank, rank + 0.8) in date order.
      const byVersion = new Map();
      for (const i of s.rows) {
        const version = points.dask_version[i];
        if (!rank.has(version)) continue;
        if (!byVersion.has(version)) byVersion.set(version, []);
        byVersion.get(version).push(i);
      }
      s.x = new Map();
      for (const [version, rows] of byVersion) {
        rows.forEach((i, j) => s.x.set(i, rank.get(version) + 0.8 * j / rows.length));
      }
      s.rows = s.rows.filter((i) => s.x.has(i)).sort((a, b) => s.x.get(a) - s.x.get(b));
    });
    return ordered;
  }

  // The series key of a point along dates, as framework/report/workload_view.py keys its noise bands.
  function bandKey(points, i) {
    return ["runtime", "hardware", "machine_class", "case_id", "size"].map((name) => points[name][i] || "").join("|");
  }

  // Only series that drew something: a runtime whose every run failed has no line to name.
  function drawLegend(holder, series) {
    holder.innerHTML = "";
    for (const s of series) {
      if (s.compare || !s.measured) continue;
      const item = document.createElement("span");
      item.className = "legend-item";
      const swatch = document.createElement("span");
      swatch.className = s.measured > 1 ? "swatch" : "swatch dot";
      if (s.measured === 1) item.title = "one measured run: a point, no line yet";
      swatch.style.background = s.color;
      item.append(swatch, document.createTextNode(s.label));
      holder.append(item);
    }
  }

  function drawHistory(target, axis, metric, points, meta, series) {
    const column = points[metric.name];
    const bytesUnit = metric.unit === "bytes";
    let top = -Infinity, bottom = Infinity;
    for (const v of column) {
      if (v === null || !isFinite(v)) continue;
      top = Math.max(top, v);
      bottom = Math.min(bottom, v);
    }
    if (bytesUnit && top === 0) {  // nothing to draw against: say so instead of an axis around zero
      const runs = column.filter((v) => v === 0).length;
      target.classList.add("unmeasured");
      target.textContent = `${metric.label}: none — 0 B in each of the ${runs} measured run × case point(s)`;
      markRendered(target, runs);
      return Promise.resolve();
    }
    const scale = !bytesUnit ? 1 : top >= 2 * 1024 ** 3 ? 1024 ** 3 : 1024 ** 2;
    const unitLabel = !bytesUnit ? "s" : scale === 1024 ** 3 ? "GiB" : "MiB";
    // Where a run that measured nothing is marked: just below the lowest measured value (at 0 on a memory axis).
    const floor = bytesUnit ? 0 : isFinite(bottom) ? bottom / scale * 0.97 : 0;
    const xOf = (s, i) => s.x.get(i);
    const plot = Bokeh.Plotting.figure({
      height: 260, sizing_mode: "stretch_width", title: metric.label,
      // Memory from zero (a 2 % move should look like one); hidden series do not stretch the axes.
      y_range: new Bokeh.DataRange1d(bytesUnit ? {start: 0, only_visible: true} : {only_visible: true}),
      x_range: new Bokeh.DataRange1d({only_visible: true}),
      x_axis_type: axis === "date" ? "datetime" : "linear",
      x_axis_label: axis === "date" ? "run date (UTC)" : `${meta.package} version`,
      y_axis_label: `${metric.label} (${unitLabel})`, tools: "pan,box_zoom,wheel_zoom,reset,save",
    });
    const fields = () => ({x: [], y: [], label: [], run_id: [], page: [], date: [], dask: [], distributed: [],
      value: [], outcome: [], passed: [], error: []});
    const failures = fields(), compareFailures = fields();
    const hovered = [], tappable = [], hidden = [];
    let drawn = 0, placed = 0;
    if (axis === "date") drawBands(plot, metric, meta, series, scale);
    for (const s of series) {
      const data = fields();
      const failed = s.compare ? compareFailures : failures;
      for (const i of s.rows) {
        const x = xOf(s, i);
        if (x === undefined) continue;
        placed++;
        const value = column[i];
        const measured = value !== null && isFinite(value);
        const into = [];
        if (measured) into.push(data);
        if (points.outcome[i] !== "passed") into.push(failed);
        for (const d of into) {
          d.x.push(x);
          d.y.push(measured ? value / scale : floor);
          d.label.push(s.label);
          d.run_id.push(points.run_id[i]);
          d.page.push(points.page[i]);
          d.date.push(new Date(points.t[i]).toISOString().slice(0, 16).replace("T", " "));
          d.dask.push(points.dask_version[i] || "–");
          d.distributed.push(points.distributed_version[i] || "–");
          d.value.push(show(metric.unit, value));
          d.outcome.push(points.outcome[i]);
          d.passed.push(`${points.passed[i]}/${points.repeats[i]}`);
          d.error.push(points.error[i] || "");
        }
      }
      if (!data.x.length) continue;
      drawn += s.compare ? 0 : data.x.length;
      const source = new Bokeh.ColumnDataSource({data});
      const line = plot.line({field: "x"}, {field: "y"}, {source, line_color: s.color, line_width: s.compare ? 1 : 1.5,
        line_dash: s.compare ? "dashed" : "solid", visible: !s.compare});
      const dots = plot.scatter({field: "x"}, {field: "y"}, {source, size: s.compare ? 7 : 5,
        marker: s.compare ? "square" : "circle", fill_color: s.compare ? "#ffffff" : s.color, line_color: s.color,
        visible: !s.compare});
      if (s.compare) hidden.push(line, dots);
      hovered.push(dots);
      tappable.push(dots);
    }
    for (const [marked, compare] of [[failures, false], [compareFailures, true]]) {
      if (!marked.x.length) continue;
      const source = new Bokeh.ColumnDataSource({data: marked});
      const marks = plot.scatter({field: "x"}, {field: "y"},
        {source, marker: "x", size: 9, line_color: FAILURE, line_width: 2, line_alpha: 0.85, visible: !compare});
      if (compare) hidden.push(marks);
      hovered.push(marks);
      tappable.push(marks);
      drawn += compare ? 0 : marked.x.length;
    }
    (COMPARE_RENDERERS[axis] = COMPARE_RENDERERS[axis] || []).push(...hidden);
    const changeData = {x: [], y: [], color: [], sentence: [], status: []};
    for (const change of meta.changes) {
      if (change.metric !== metric.name || change.along !== axis) continue;
      for (const s of series) {
        if (s.compare) continue;  // a scan that took a comparison's runs for history: not drawn on the history
        const i = s.rows.find((row) => points.run_id[row] === change.run_id && points.case_id[row] === change.case_id
          && points.hardware[row] === change.hardware && (axis === "version" || points.runtime[row] === change.runtime)
          && (!change.machine_class || points.machine_class[row] === change.machine_class));
        if (i === undefined || xOf(s, i) === undefined) continue;
        const value = column[i];
        changeData.x.push(xOf(s, i));
        changeData.y.push(value !== null && isFinite(value) ? value / scale : floor);
        changeData.color.push(change.status === "accepted" ? ACCEPTED : CHANGE[change.direction] || FAILURE);
        changeData.sentence.push(change.sentence || "");
        changeData.status.push(change.status);
        break;
      }
    }
    if (changeData.x.length) {
      const source = new Bokeh.ColumnDataSource({data: changeData});
      plot.vspan({field: "x"}, {source, line_color: {field: "color"}, line_dash: "dashed", line_width: 2});
      const marks = plot.scatter({field: "x"}, {field: "y"}, {source, marker: "diamond", size: 16,
        fill_alpha: 0, line_color: {field: "color"}, line_width: 2.5});
      plot.add_tools(new Bokeh.HoverTool({renderers: [marks], tooltips: [["change point", "@status: @sentence"]]}));
    }
    plot.add_tools(new Bokeh.HoverTool({renderers: hovered, tooltips: [
      ["series", "@label"], ["run", "@run_id"], ["date", "@date UTC"], ["dask", "@dask"],
      ["distributed", "@distributed"], [metric.label, "@value"], ["outcome", "@outcome (@passed passed)"],
      ["error", "@error"]]}));
    plot.add_tools(new Bokeh.TapTool({renderers: tappable,
      callback: new Bokeh.OpenURL({url: "../runs/@page.html", same_tab: true})}));
    if (!drawn) {
      target.classList.add("unmeasured");
      target.textContent = placed
        ? `${metric.label}: not measured in any run of this workload (each run's missing column says why)`
        : `${metric.label}: no run of this workload records its ${meta.package} version`;
      markRendered(target, 0);
      return Promise.resolve();
    }
    if (axis === "date") {  // dates that read on their own at every zoom (Bokeh's minute ticks say only ":21")
      plot.xaxis.formatter = new Bokeh.DatetimeTickFormatter({seconds: "%H:%M:%S", minsec: "%H:%M:%S", minutes: "%H:%M",
        hourmin: "%m-%d %H:%M", hours: "%m-%d %H:%M", days: "%Y-%m-%d", months: "%Y-%m", years: "%Y"});
    }
    if (axis === "version") {
      const ticks = meta.versions.map((_, position) => position);
      plot.xaxis.ticker = new Bokeh.FixedTicker({ticks});
      plot.xaxis.major_label_overrides = new Map(meta.versions.map((version, position) => [position, version]));
      if (meta.versions.length > 8) plot.xaxis.major_label_orientation = 0.8;
    }
    return Bokeh.Plotting.show(plot, target).then(() => markRendered(target, drawn));
  }

  // Per axis, the renderers of A/B comparison runs: hidden until the page's checkbox shows them.
  const COMPARE_RENDERERS = {};

  // Each series' noise band (level ± noise between change points, computed by the report's Python side), shaded
  // in the series' colour under its line.
  function drawBands(plot, metric, meta, series, scale) {
    const colors = new Map(series.filter((s) => !s.compare && s.key !== null).map((s) => [s.key, s.color]));
    const data = {left: [], right: [], bottom: [], top: [], color: [], level: []};
    for (const band of meta.bands || []) {
      if (band.metric !== metric.name || !colors.has(band.series)) continue;
      const pad = band.from === band.to ? 6 * 3600 * 1000 : 0;  // a stretch of one day: still visible
      data.left.push(band.from - pad);
      data.right.push(band.to + pad);
      data.bottom.push(band.low / scale);
      data.top.push(band.high / scale);
      data.color.push(colors.get(band.series));
      data.level.push(band.level / scale);
    }
    if (!data.left.length) return;
    const source = new Bokeh.ColumnDataSource({data});
    plot.quad({left: {field: "left"}, right: {field: "right"}, bottom: {field: "bottom"}, top: {field: "top"}, source,
      fill_color: {field: "color"}, fill_alpha: 0.12, line_alpha: 0});
    plot.segment({field: "left"}, {field: "level"}, {field: "right"}, {field: "level"},
      {source, line_color: {field: "color"}, line_alpha: 0.35, line_dash: "dotted"});
  }

  function compareToggles() {
    for (const box of document.querySelectorAll("input[data-compare-toggle]")) {
      box.addEventListener("change", () => {
        for (const renderer of COMPARE_RENDERERS[box.dataset.compareToggle] || []) renderer.visible = box.checked;
      });
    }
  }

  function historyPage() {
    const rows = readJSON("history-points");
    const meta = readJSON("history-meta");
    if (!rows || !meta) return;
    const points = {};  // field → its values, one per point
    meta.fields.forEach((field, k) => { points[field] = rows.map((row) => row[k]); });
    const series = {date: historySeries(points, meta, "date"), version: historySeries(points, meta, "version")};
    for (const holder of document.querySelectorAll(".legend[data-axis]")) drawLegend(holder, series[holder.dataset.axis]);
    const unplaced = points.dask_version.filter((version) => !version).length;
    if (unplaced) {
      document.getElementById("version-note").textContent =
        `${unplaced} run × case point(s) without a ${meta.package} version are not on the version axis.`;
    }
    const metrics = new Map(meta.metrics.map((metric) => [metric.name, metric]));
    const render = (panel) => {
      for (const target of panel.querySelectorAll(".plot")) {
        if (target.dataset.started) continue;
        target.dataset.started = "true";
        const axis = target.dataset.axis;
        drawHistory(target, axis, metrics.get(target.dataset.metric), points, meta, series[axis])
          .catch((error) => { target.textContent = `plot failed: ${error}`; throw error; });
      }
    };
    const panels = [...document.querySelectorAll(".tab-panel")];
    for (const button of document.querySelectorAll(".tab")) {
      button.addEventListener("click", () => {
        for (const other of document.querySelectorAll(".tab")) other.classList.toggle("active", other === button);
        for (const panel of panels) {
          panel.hidden = panel.dataset.panel !== button.dataset.tab;
          if (!panel.hidden) render(panel);
        }
      });
    }
    render(panels.find((panel) => !panel.hidden));
    compareToggles();
  }

  // ---- an A/B comparison: one panel per metric, each change a log-ratio with its 95 % interval --------------
  // The panels' ranges, ticks and clipping come from the page's data (framework/report/comparison_plot.py); an
  // interval that runs off a panel ends in an arrow at its edge, its real bounds in the hover text.

  function comparisonPanel(target, panel) {
    const limit = panel.limit, edge = limit * 1.03;
    const data = {label: [], x: [], low: [], high: [], color: [], verdict: [], sentence: [], change: [],
      interval: [], off: []};
    const arrows = {x: [], label: [], angle: [], color: [], verdict: [], sentence: [], change: [], interval: [],
      off: []};
    for (const row of panel.rows) {
      const color = VERDICT[row.verdict] || "#000000";
      const off = row.off_low && row.off_high ? "both ends run off this panel"
        : row.off_high ? "runs off this panel to the right" : row.off_low ? "runs off this panel to the left" : "";
      for (const [key, value] of Object.entries({label: row.label, x: row.x, low: row.low, high: row.high, color,
        verdict: row.verdict, sentence: row.sentence, change: row.change, interval: row.interval, off})) {
        data[key].push(value);
      }
      for (const [flag, x, angle] of [[row.off_high, edge, -Math.PI / 2], [row.off_low, -edge, Math.PI / 2]]) {
        if (!flag) continue;
        for (const [key, value] of Object.entries({x, label: row.label, angle, color, verdict: row.verdict,
          sentence: row.sentence, change: row.change, interval: row.interval, off})) {
          arrows[key].push(value);
        }
      }
    }
    const labels = [...panel.labels].reverse();  // the first case on top
    const plot = Bokeh.Plotting.figure({
      height: 64 + 24 * labels.length, sizing_mode: "stretch_width", y_range: labels, title: panel.title,
      x_range: new Bokeh.Range1d({start: -limit * 1.12, end: limit * 1.12}), x_axis_location: "above",
      x_axis_label: "change of the candidate's median (log scale), with its 95 % interval",
      tools: "pan,box_zoom,wheel_zoom,reset,save",
    });
    plot.xaxis.ticker = new Bokeh.FixedTicker({ticks: panel.ticks.map(([at]) => at)});
    plot.xaxis.major_label_overrides = new Map(panel.ticks.map(([at, label]) => [at, label]));
    plot.add_layout(new Bokeh.Span({location: 0, dimension: "height", line_color: "#444444", line_dash: "dotted"}));
    const source = new Bokeh.ColumnDataSource({data});
    const bars = plot.segment({field: "low"}, {field: "label"}, {field: "high"}, {field: "label"},
      {source, line_color: {field: "color"}, line_width: 2.5});
    const dots = plot.scatter({field: "x"}, {field: "label"},
      {source, size: 9, fill_color: {field: "color"}, line_color: {field: "color"}});
    const renderers = [dots, bars];
    if (arrows.x.length) {
      const marks = plot.scatter({field: "x"}, {field: "label"}, {source: new Bokeh.ColumnDataSource({data: arrows}),
        marker: "triangle", angle: {field: "angle"}, size: 13, fill_color: {field: "color"}, line_color: {field: "color"}});
      renderers.push(marks);
    }
    plot.add_tools(new Bokeh.HoverTool({renderers, tooltips: [["", "@label"], [panel.title, "@change (95 % CI @interval) @off"],
      ["", "@sentence"]]}));
    target.dataset.arrows = String(arrows.x.length);
    return Bokeh.Plotting.show(plot, target).then(() => markRendered(target, panel.rows.length));
  }

  function comparisonPage() {
    const targets = document.querySelectorAll(".plot[data-comparison]");
    if (!targets.length) return;
    const panels = new Map(readJSON(targets[0].dataset.comparison).map((panel) => [panel.metric, panel]));
    for (const target of targets) {
      comparisonPanel(target, panels.get(target.dataset.metric))
        .catch((error) => { target.textContent = `plot failed: ${error}`; throw error; });
    }
  }

  // ---- a run's executions: every recorded column, as a table ----------------------------------------------

  // Microseconds since the epoch → "2026-01-01 02:00:00.123456 UTC".
  function utc(microseconds) {
    const iso = new Date(Math.floor(microseconds / 1000)).toISOString();
    const micro = String(((microseconds % 1e6) + 1e6) % 1e6).padStart(6, "0");
    return `${iso.slice(0, 10)} ${iso.slice(11, 19)}.${micro} UTC`;
  }

  // JSON text as Python's json.dumps wrote it, with its characters back: "2 × 4", not "2 \u00d7 4".
  function unescaped(text) {
    return text.replace(/(?<!\\)((?:\\\\)*)\\u([0-9a-fA-F]{4})/g,
      (_, slashes, hex) => slashes + String.fromCharCode(parseInt(hex, 16)));
  }

  function cell(raw, column, dumpLinks, timestamps) {
    const td = document.createElement("td");
    if (typeof raw === "number" && column.endsWith("_bytes")) {  // 23.5 GiB, the exact count on hover
      td.textContent = bytes(raw);
      td.title = `${raw} bytes`;
      td.className = "num";
      return td;
    }
    const value = raw === null ? null : typeof raw === "string" ? unescaped(raw)
      : timestamps.has(column) ? utc(raw) : Array.isArray(raw) ? raw.join(", ") : String(raw);
    if (value === null) {
      td.className = "missing";
      td.textContent = "–";
    } else if (column === "cluster_dump" && dumpLinks[value]) {
      td.innerHTML = dumpLinks[value];  // built and escaped by the report's Python side
    } else if (value.length > 60) {
      const details = document.createElement("details");
      const summary = document.createElement("summary");
      summary.textContent = value.split("\n")[0].slice(0, 60) + "…";
      const pre = document.createElement("pre");
      pre.textContent = value;
      details.append(summary, pre);
      td.append(details);
    } else {
      td.textContent = value;
      if (column === "outcome") td.className = `outcome ${value}`;
    }
    return td;
  }

  function executionTables() {
    const meta = readJSON("columns");
    if (!meta) return;
    const columns = meta.names, timestamps = new Set(meta.timestamps);
    const dumpLinks = readJSON("dump-links") || {};
    for (const holder of document.querySelectorAll(".executions[data-source]")) {
      const rows = readJSON(holder.dataset.source);
      const tableElement = document.createElement("table");
      tableElement.className = "executions-table";
      const head = tableElement.createTHead().insertRow();
      for (const column of columns) {
        const th = document.createElement("th");
        th.textContent = column;
        head.append(th);
      }
      const body = tableElement.createTBody();
      for (const values of rows) {
        const tr = body.insertRow();
        values.forEach((value, k) => tr.append(cell(value, columns[k], dumpLinks, timestamps)));
      }
      holder.append(tableElement);
      holder.dataset.rendered = "true";
      holder.dataset.points = String(rows.length);
    }
  }

  function start() {
    executionTables();
    if (typeof Bokeh !== "undefined") {
      historyPage();
      comparisonPage();
    }
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
