// Package poller reads PowerMTA's HTTP management interface and turns what it
// reports into points: pmta_status (global counters, connections, queue and
// spool totals, derived rates), pmta_queue, pmta_domain and pmta_vmta.
//
// Two dialects are spoken. "pmta" is the real PowerMTA 4.5/5.x web monitor
// (/status, /queues, /domains, /vmtas with format=json or format=xml, the
// {"data":…,"status":"success"} and <rsp><data>…</data><succ/></rsp>
// envelopes). "seed" is the simpler /status.json plus CSV listings that some
// shops put in front of PowerMTA; it is read for what it holds: a
// status.json missing a documented key gives the others (and counts the key
// in fields_missing), and a CSV without a header row is told from one with a
// header by whether its first row has numbers where the format puts them.
//
// Parsing is pure and lives apart from the HTTP code: every parser takes an
// io.Reader and returns plain values, so that golden and fuzz tests can drive
// them without a network. A Poller never fails because PowerMTA does: a round
// that cannot reach an endpoint still yields a pmta_status point with up=0,
// counts the error and logs it once per state change (and at most every ten
// minutes while it persists).
//
// Memory does not grow with what PowerMTA (or whatever answers in its place)
// sends. The endpoints of a round are fetched one after the other, and each
// reply is parsed as it arrives rather than read whole: a JSON reply is
// walked token by token and its listing decoded one entry at a time, XML is
// a token stream, CSV a record stream. A reply longer than
// api.max_body_bytes (16 MiB by default) is refused as a failure of its
// endpoint. Within that, what could make a parser hold many times the size
// of its input is bounded too: a listing keeps at most maxRows rows (the
// rest are counted in rows_skipped), a single JSON value may be 1 MiB, XML
// may nest 1000 elements deep, and a CSV row may be 16 KiB.
//
// The API key (X-API-Key) goes only to the configured scheme, host and port,
// and across PowerMTA 5's redirect from http:// to https:// on that host and
// port; any other redirect target gets the request without it.
package poller
