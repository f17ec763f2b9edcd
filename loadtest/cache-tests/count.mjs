// Counts results of the HTTP cache test suite the way cache-tests.fyi shows
// them, so shardproxy's numbers compare with the published ones.
//
//   node count.mjs RESULTS.json [NAME]        one JSON summary line (with
//                                             failed_ids: the required tests that failed)
//   node count.mjs --published                the results shipped in the package
//   node count.mjs --table RESULTS.json NAME  NAME's counts above the published ones
//   node count.mjs --markdown RESULTS.json NAME SUITE_VERSION [WHY_FILE]
//                                             a markdown report of what did not pass,
//                                             with WHY_FILE's reasons (why.txt)
//
// The categories follow the key of cache-tests.fyi (see the package's README,
// "Interpreting the Results"): a test's result is "pass"/"fail" for required
// tests, "pass"/"optional_fail" for optimal ones, "yes"/"no" for checks, and
// "dependency_fail" when a test it depends on did not pass (or say yes),
// "setup_fail" / "retry" when the harness could not set the test up, and
// "untested" when there is no result. "failed" in the published comparisons is
// the count of required tests that failed (the red ⛔️ marks).

import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const here = path.dirname(fileURLToPath(import.meta.url))
const suiteDir = path.join(here, 'node_modules', 'http-cache-tests')

/** The suites the CLI runner runs: the base ones plus Surrogate-Control. */
async function loadSuites () {
  const base = (await import(pathToFileURL(path.join(suiteDir, 'tests', 'index.mjs')))).default
  const surrogate = (await import(pathToFileURL(path.join(suiteDir, 'tests', 'surrogate-control.mjs')))).default
  return [...base, surrogate]
}

/** Tests a proxy can run: browser-only ones are skipped by the CLI runner. */
function proxyTests (suites) {
  const tests = new Map()
  for (const suite of suites) {
    for (const test of suite.tests) {
      if (test.browser_only === true) continue
      tests.set(test.id, { ...test, suite: suite.name })
    }
  }
  return tests
}

const passing = new Set(['pass', 'yes'])

function classify (tests, results, id, seen = new Set()) {
  const test = tests.get(id)
  const result = results[id]
  if (test === undefined || result === undefined) return 'untested'
  if (test.depends_on !== undefined && !seen.has(id)) {
    seen.add(id)
    for (const dependency of test.depends_on) {
      if (!passing.has(classify(tests, results, dependency, seen))) return 'dependency_fail'
    }
  }
  if (Array.isArray(result) && result[0] === 'Setup') {
    return result[1] === 'retry' ? 'retry' : 'setup_fail'
  }
  const kind = test.kind ?? 'required'
  const ok = result === true
  if (kind === 'required') return ok ? 'pass' : 'fail'
  if (kind === 'optimal') return ok ? 'pass' : 'optional_fail'
  if (kind === 'check') return ok ? 'yes' : 'no'
  throw new Error(`test ${id} has an unknown kind ${kind}`)
}

const categories = ['pass', 'fail', 'optional_fail', 'yes', 'no', 'dependency_fail', 'setup_fail', 'retry', 'untested']

function summarise (tests, results) {
  const counts = Object.fromEntries(categories.map(c => [c, 0]))
  const byKind = {}
  const notPassed = []
  for (const [id, test] of tests) {
    const category = classify(tests, results, id)
    counts[category] += 1
    const kind = test.kind ?? 'required'
    byKind[kind] ??= Object.fromEntries(categories.map(c => [c, 0]))
    byKind[kind][category] += 1
    if (!passing.has(category)) {
      const detail = Array.isArray(results[id]) ? results[id].join(': ') : ''
      notPassed.push({ id, name: test.name, kind, suite: test.suite, category, detail })
    }
  }
  return {
    tests: tests.size,
    run: tests.size - counts.untested,
    passed: counts.pass,
    failed: counts.fail,
    counts,
    by_kind: byKind,
    not_passed: notPassed
  }
}

function readJson (file) {
  return JSON.parse(fs.readFileSync(file, 'utf8'))
}

function oneLine (name, s) {
  const c = s.counts
  return `${name.padEnd(20)} tests ${s.tests}  passed ${c.pass}  failed ${c.fail}  optional_fail ${c.optional_fail}  ` +
    `yes ${c.yes}  no ${c.no}  dependency_fail ${c.dependency_fail}  setup_fail ${c.setup_fail}  retry ${c.retry}  untested ${c.untested}`
}

async function publishedSummaries (tests) {
  const index = (await import(pathToFileURL(path.join(suiteDir, 'results', 'index.mjs')))).default
  return index
    .filter(entry => entry.type !== 'browser')
    .map(entry => ({
      name: entry.name,
      version: entry.version,
      summary: summarise(tests, readJson(path.join(suiteDir, 'results', entry.file)))
    }))
}

/**
 * The reasons of a file whose lines are `ID reason` or `PREFIX* reason`
 * (# starts a comment): why a test does not pass.
 */
function readReasons (file) {
  if (file === undefined) return []
  return fs.readFileSync(file, 'utf8').split('\n')
    .map(line => line.replace(/#.*/, '').trim())
    .filter(line => line !== '')
    .map(line => {
      const [pattern, ...words] = line.split(/\s+/)
      return { pattern, reason: words.join(' ') }
    })
}

/** The reason that `reasons` give for test `id`, or ''. */
function why (reasons, id) {
  const found = reasons.find(({ pattern }) =>
    pattern.endsWith('*') ? id.startsWith(pattern.slice(0, -1)) : id === pattern)
  return found === undefined ? '' : found.reason
}

function markdown (name, version, s, published, reasons) {
  const lines = []
  const c = s.counts
  lines.push(`# HTTP cache test suite (http-cache-tests ${version}): ${name}`, '')
  lines.push('Made by loadtest/cache-tests/run.sh; counted by loadtest/cache-tests/count.mjs the way cache-tests.fyi shows results.', '')
  lines.push(`${s.tests} tests (${s.run} with a result): **${c.pass} passed, ${c.fail} failed** (required tests that failed), ` +
    `${c.optional_fail} optional (optimal) not met, checks ${c.yes} yes / ${c.no} no, ` +
    `${c.dependency_fail} not counted because a test they depend on did not pass, ${c.setup_fail} setup failures, ${c.retry} retries.`, '')
  if (published.length > 0) {
    lines.push('Published results shipped with the suite, counted the same way on the same tests:', '')
    lines.push('| implementation | version | passed | failed | optional not met | dependency failed | setup failed |')
    lines.push('| --- | --- | ---: | ---: | ---: | ---: | ---: |')
    lines.push(`| **${name}** | | ${c.pass} | ${c.fail} | ${c.optional_fail} | ${c.dependency_fail} | ${c.setup_fail} |`)
    for (const p of published) {
      const pc = p.summary.counts
      lines.push(`| ${p.name} | ${p.version} | ${pc.pass} | ${pc.fail} | ${pc.optional_fail} | ${pc.dependency_fail} | ${pc.setup_fail} |`)
    }
    lines.push('')
  }
  const order = ['fail', 'setup_fail', 'retry', 'dependency_fail', 'optional_fail', 'no', 'untested']
  for (const category of order) {
    const rows = s.not_passed.filter(t => t.category === category)
    if (rows.length === 0) continue
    lines.push(`## ${category} (${rows.length})`, '')
    lines.push('| id | kind | name | detail | why |', '| --- | --- | --- | --- | --- |')
    for (const t of rows) {
      const cell = text => String(text).replaceAll('|', '\\|').replaceAll('\n', ' ')
      lines.push(`| \`${t.id}\` | ${t.kind} | ${cell(t.name)} | ${cell(t.detail)} | ${cell(why(reasons, t.id))} |`)
    }
    lines.push('')
  }
  return lines.join('\n')
}

async function main (args) {
  const tests = proxyTests(await loadSuites())
  if (args[0] === '--published') {
    for (const p of await publishedSummaries(tests)) console.log(oneLine(p.name, p.summary))
    return
  }
  if (args[0] === '--table') {
    console.log(oneLine(args[2] ?? 'shardproxy', summarise(tests, readJson(args[1]))))
    console.log('published results shipped with the suite, counted the same way:')
    for (const p of await publishedSummaries(tests)) console.log(oneLine(p.name, p.summary))
    return
  }
  if (args[0] === '--markdown') {
    const s = summarise(tests, readJson(args[1]))
    const reasons = readReasons(args[4])
    process.stdout.write(markdown(args[2] ?? 'shardproxy', args[3] ?? '?', s, await publishedSummaries(tests), reasons))
    return
  }
  if (args.length < 1) throw new Error('usage: node count.mjs RESULTS.json [NAME] | --published | --markdown RESULTS.json [NAME]')
  const s = summarise(tests, readJson(args[0]))
  const { not_passed: notPassed, ...counts } = s
  counts.failed_ids = notPassed.filter(t => t.category === 'fail').map(t => t.id)
  console.log(JSON.stringify(counts))
}

main(process.argv.slice(2)).catch(err => {
  console.error(`count.mjs: ${err.message}`)
  process.exit(1)
})
