package acct

// parseTime reads a PowerMTA time stamp as Unix seconds: with iso-times (the
// 5.0 default) "2006-01-02 15:04:05-0700", without it integer seconds since
// the epoch. It is written out by hand because time.Parse costs more than the
// rest of a record's parsing together. Also accepted, since other writers and
// hand-made files use them: a 'T' separator, a fraction of a second (dropped),
// a space before the zone, zones "Z", "±HH:MM" and "±HH", and no zone at all
// (read as UTC).
func parseTime(b []byte) (int64, bool) {
	b = trimSpace(b)
	if len(b) == 0 {
		return 0, false
	}
	if len(b) <= 12 || (len(b) > 4 && b[4] != '-') {
		return parseEpoch(b)
	}
	if len(b) < 19 || b[4] != '-' || b[7] != '-' || (b[10] != ' ' && b[10] != 'T') || b[13] != ':' || b[16] != ':' {
		return 0, false
	}
	year, ok1 := digits(b[0:4])
	month, ok2 := digits(b[5:7])
	day, ok3 := digits(b[8:10])
	hour, ok4 := digits(b[11:13])
	minute, ok5 := digits(b[14:16])
	sec, ok6 := digits(b[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || year < 1 ||
		month < 1 || month > 12 || day < 1 || day > daysIn(year, month) ||
		hour > 23 || minute > 59 || sec > 60 {
		return 0, false
	}
	rest := b[19:]
	if len(rest) > 0 && (rest[0] == '.' || rest[0] == ',') {
		i := 1
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		if i == 1 {
			return 0, false
		}
		rest = rest[i:]
	}
	if len(rest) > 0 && rest[0] == ' ' {
		rest = rest[1:]
	}
	off, ok := parseZone(rest)
	if !ok {
		return 0, false
	}
	days := daysFromCivil(year, month, day)
	return days*86400 + hour*3600 + minute*60 + sec - off, true
}

// parseEpoch reads integer seconds, with an optional fraction that is dropped.
func parseEpoch(b []byte) (int64, bool) {
	var n int64
	i := 0
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		if i >= 12 {
			return 0, false
		}
		n = n*10 + int64(b[i]-'0')
	}
	if i == 0 {
		return 0, false
	}
	if i < len(b) {
		if b[i] != '.' || i+1 == len(b) {
			return 0, false
		}
		for _, c := range b[i+1:] {
			if c < '0' || c > '9' {
				return 0, false
			}
		}
	}
	return n, true
}

// parseZone returns the zone's offset east of UTC in seconds.
func parseZone(z []byte) (int64, bool) {
	switch {
	case len(z) == 0:
		return 0, true
	case len(z) == 1 && (z[0] == 'Z' || z[0] == 'z'):
		return 0, true
	case z[0] != '+' && z[0] != '-':
		return 0, false
	}
	sign := int64(1)
	if z[0] == '-' {
		sign = -1
	}
	z = z[1:]
	var hh, mm int64
	var ok, ok2 bool
	switch len(z) {
	case 2:
		hh, ok = digits(z)
		ok2 = true
	case 4:
		hh, ok = digits(z[0:2])
		mm, ok2 = digits(z[2:4])
	case 5:
		if z[2] != ':' {
			return 0, false
		}
		hh, ok = digits(z[0:2])
		mm, ok2 = digits(z[3:5])
	default:
		return 0, false
	}
	if !ok || !ok2 || hh > 18 || mm > 59 {
		return 0, false
	}
	return sign * (hh*3600 + mm*60), true
}

func digits(b []byte) (int64, bool) {
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

func daysIn(year, month int64) int64 {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysFromCivil is the number of days from 1970-01-01 to the given proleptic
// Gregorian date (Howard Hinnant's algorithm).
func daysFromCivil(y, m, d int64) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400 // y >= 0 here: four-digit years only
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468
}

// timeCache remembers the last ISO stamp's date, hour and zone: records come
// in time order, so consecutive stamps mostly differ only in minutes and
// seconds, and those two fields are all that needs reading.
type timeCache struct {
	pre    [14]byte // "2006-01-02 15:"
	suf    [16]byte // what follows the seconds: fraction and zone
	sufLen int
	base   int64 // the stamp's Unix time at minute 0, second 0
	valid  bool
}

func (c *timeCache) parse(b []byte) (int64, bool) {
	b = trimSpace(b)
	if c.valid && len(b) >= 19 && len(b)-19 == c.sufLen && string(b[:14]) == string(c.pre[:]) &&
		string(b[19:]) == string(c.suf[:c.sufLen]) && b[16] == ':' {
		mm, ok1 := digits(b[14:16])
		ss, ok2 := digits(b[17:19])
		if ok1 && ok2 && mm <= 59 && ss <= 60 {
			return c.base + mm*60 + ss, true
		}
	}
	ts, ok := parseTime(b)
	if !ok || len(b) < 19 || len(b)-19 > len(c.suf) || b[4] != '-' {
		return ts, ok
	}
	mm, _ := digits(b[14:16])
	ss, _ := digits(b[17:19])
	copy(c.pre[:], b[:14])
	c.sufLen = copy(c.suf[:], b[19:])
	c.base, c.valid = ts-mm*60-ss, true
	return ts, true
}
