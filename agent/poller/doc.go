// Package poller reads PowerMTA's HTTP management interface and turns what it
// reports into points: pmta_status (global counters, connections, queue and
// spool totals, derived rates), pmta_queue, pmta_domain and pmta_vmta.
//
// Two dialects are spoken. "pmta" is the real PowerMTA 4.5/5.x web monitor
// (/status, /queues, /domains, /vmtas with format=json or format=xml, the
// {"data":…,"status":"success"} and <rsp><data>…</data><succ/></rsp>
// envelopes). "seed" is the simpler /status.json plus CSV listings that some
// shops put in front of PowerMTA.
//
// Parsing is pure and lives apart from the HTTP code: every parser takes an
// io.Reader and returns plain values, so that golden and fuzz tests can drive
// them without a network. A Poller never fails because PowerMTA does: a round
// that cannot reach an endpoint still yields a pmta_status point with up=0,
// counts the error and logs it once per state change (and at most every ten
// minutes while it persists).
package poller
