package redis

import (
	"slices"
	"strconv"
	"strings"

	"github.com/tendril-db/tendril/driver"
	"github.com/tendril-db/tendril/driver/internal/rediscmd"
	"github.com/tendril-db/tendril/proto/resp"
)

// toReply converts a decoded value to the reply form rows are made from.
// The value's strings belong to it alone (each request decodes into its
// own Value), so they are not copied. Below the top level, maps become
// flat arrays and simple strings strings (see toElem).
func toReply(v *resp.Value) rediscmd.Reply {
	switch v.Kind {
	case resp.KindSimpleString:
		return rediscmd.Status(v.Str)
	case resp.KindMap:
		m := make(rediscmd.Map, len(v.Elems))
		for i := range v.Elems {
			m[i] = toElem(&v.Elems[i])
		}
		return m
	case resp.KindArray, resp.KindSet, resp.KindPush:
		return toArray(v)
	}
	return scalar(v)
}

// toElem converts an element of an aggregate reply to the value a row
// holds. A nested map is a flat array of field, value..., as RESP2 sends
// it: a row value has no map type, and a map nested in a map (XINFO STREAM
// FULL) must not differ between the protocols.
func toElem(v *resp.Value) any {
	switch v.Kind {
	case resp.KindSimpleString:
		return string(v.Str)
	case resp.KindMap, resp.KindArray, resp.KindSet, resp.KindPush:
		return toArray(v)
	}
	return scalar(v)
}

func toArray(v *resp.Value) []any {
	a := make([]any, len(v.Elems))
	for i := range v.Elems {
		a[i] = toElem(&v.Elems[i])
	}
	return a
}

// scalar converts a value that is not an aggregate nor a simple string.
func scalar(v *resp.Value) any {
	switch v.Kind {
	case resp.KindError, resp.KindBulkError:
		return serverError(v)
	case resp.KindInteger:
		return v.Int
	case resp.KindBulkString, resp.KindVerbatim, resp.KindBigNumber:
		if v.Str == nil {
			return []byte{}
		}
		return v.Str
	case resp.KindBoolean:
		return v.Bool()
	case resp.KindDouble:
		return v.Float
	}
	return nil // KindNull
}

// canonical rewrites a RESP2 reply in the shape RESP3 gives it (sh, from
// the command's rediscmd.Spec.ReplyShape), so that rows and their Go types
// do not depend on the protocol the connection speaks: a flat array of
// field, value... becomes a map, a string holding a score a double, a flat
// member, score... array an array of pairs. A reply already in its RESP3
// shape, an error, a null, or anything else unexpected is left as it is.
//
// The pairs made from a flat array share its elements: v must be converted
// (toReply) before the Values are reused. EXEC's reply is an array of the
// queued statements' replies: convert each element with the shape of its
// own statement (rediscmd.Lookup(argv) then ReplyShape(argv)).
func canonical(v *resp.Value, sh rediscmd.Shape) {
	switch sh {
	case rediscmd.ShapeAsIs:
	case rediscmd.ShapeMap:
		toMap(v)
	case rediscmd.ShapeDouble:
		toDouble(v)
	case rediscmd.ShapeDoubles:
		if v.Kind == resp.KindArray {
			for i := range v.Elems {
				toDouble(&v.Elems[i])
			}
		}
	case rediscmd.ShapeScorePair:
		if v.Kind == resp.KindArray && len(v.Elems) == 2 {
			toDouble(&v.Elems[1])
		}
	case rediscmd.ShapeKeyScorePair:
		if v.Kind == resp.KindArray && len(v.Elems) == 3 {
			toDouble(&v.Elems[2])
		}
	case rediscmd.ShapeScorePairs:
		toPairs(v, true)
	case rediscmd.ShapePairs:
		toPairs(v, false)
	case rediscmd.ShapeKeyScorePairs:
		if v.Kind == resp.KindArray && len(v.Elems) == 2 && v.Elems[1].Kind == resp.KindArray {
			for i := range v.Elems[1].Elems {
				if p := &v.Elems[1].Elems[i]; p.Kind == resp.KindArray && len(p.Elems) == 2 {
					toDouble(&p.Elems[1])
				}
			}
		}
	case rediscmd.ShapeStreams:
		toStreams(v)
	case rediscmd.ShapeCoords:
		if v.Kind == resp.KindArray {
			for i := range v.Elems {
				toDoubles(&v.Elems[i])
			}
		}
	case rediscmd.ShapeGeoItems:
		if v.Kind == resp.KindArray {
			for i := range v.Elems {
				if it := &v.Elems[i]; it.Kind == resp.KindArray && len(it.Elems) > 1 {
					toDoubles(&it.Elems[len(it.Elems)-1])
				}
			}
		}
	case rediscmd.ShapeMemoryStats:
		toMap(v)
		doublesAt(v, memoryStatsDoubles)
	case rediscmd.ShapeACLLog:
		if v.Kind == resp.KindArray {
			for i := range v.Elems {
				doublesAt(&v.Elems[i], aclLogDoubles)
			}
		}
	}
}

// memoryStatsDoubles are the fields of MEMORY STATS that RESP3 sends as
// doubles; aclLogDoubles those of an ACL LOG entry.
var (
	memoryStatsDoubles = []string{"dataset.percentage", "peak.percentage", "allocator-fragmentation.ratio",
		"allocator-rss.ratio", "rss-overhead.ratio", "fragmentation"}
	aclLogDoubles = []string{"age-seconds"}
)

// toMap makes a RESP2 flat array of field, value... a map.
func toMap(v *resp.Value) {
	if v.Kind == resp.KindArray && len(v.Elems)%2 == 0 {
		v.Kind = resp.KindMap
	}
}

// toDouble makes a RESP2 string holding a double a double.
func toDouble(v *resp.Value) {
	if v.Kind != resp.KindBulkString && v.Kind != resp.KindSimpleString {
		return
	}
	if f, err := strconv.ParseFloat(string(v.Str), 64); err == nil {
		v.Kind, v.Float = resp.KindDouble, f
	}
}

// toDoubles makes the strings of a RESP2 array doubles ([longitude,
// latitude]).
func toDoubles(v *resp.Value) {
	if v.Kind == resp.KindArray {
		for i := range v.Elems {
			toDouble(&v.Elems[i])
		}
	}
}

// toPairs makes a RESP2 flat array of member, score... an array of
// [member, score] pairs, with double scores when score is set. RESP3's
// array of arrays is left alone.
func toPairs(v *resp.Value, score bool) {
	if v.Kind != resp.KindArray || len(v.Elems) == 0 || len(v.Elems)%2 != 0 || v.Elems[0].Kind == resp.KindArray {
		return
	}
	pairs := make([]resp.Value, len(v.Elems)/2)
	for i := range pairs {
		pairs[i] = resp.Value{Kind: resp.KindArray, Elems: v.Elems[2*i : 2*i+2 : 2*i+2]}
		if score {
			toDouble(&pairs[i].Elems[1])
		}
	}
	v.Elems = pairs
}

// toStreams makes XREAD's RESP2 array of [name, entries] pairs a map of
// name to entries.
func toStreams(v *resp.Value) {
	if v.Kind != resp.KindArray {
		return
	}
	for i := range v.Elems {
		if e := &v.Elems[i]; e.Kind != resp.KindArray || len(e.Elems) != 2 {
			return
		}
	}
	m := make([]resp.Value, 0, 2*len(v.Elems))
	for i := range v.Elems {
		m = append(m, v.Elems[i].Elems...)
	}
	v.Kind, v.Elems = resp.KindMap, m
}

// doublesAt makes the values of the named fields of a map (or a RESP2 flat
// array of field, value...) doubles.
func doublesAt(v *resp.Value, fields []string) {
	if (v.Kind != resp.KindMap && v.Kind != resp.KindArray) || len(v.Elems)%2 != 0 {
		return
	}
	for i := 0; i < len(v.Elems); i += 2 {
		if slices.Contains(fields, string(v.Elems[i].Str)) {
			toDouble(&v.Elems[i+1])
		}
	}
}

// serverError converts an error reply. MOVED and ASK become a
// driver.RedirectError (wrapping the server error) so the user API can
// follow them.
func serverError(v *resp.Value) error {
	se := replyError(v)
	if code := se.Code; code == "MOVED" || code == "ASK" {
		_, rest, _ := strings.Cut(se.Msg, " ")
		// "MOVED 3999 127.0.0.1:6381"
		slot, addr, ok := strings.Cut(rest, " ")
		if p, err := strconv.Atoi(slot); ok && err == nil {
			if strings.HasPrefix(addr, ":") {
				// An empty host means "the address you reached me at";
				// the caller fills it in (see redisConn.reply).
				addr = "?" + addr
			}
			return &driver.RedirectError{Partition: p, Addr: addr, Ask: code == "ASK", Err: se}
		}
	}
	return se
}

// replyError converts an error reply into the server's code and message.
func replyError(v *resp.Value) *driver.ServerError {
	msg := string(v.Str)
	code, _, _ := strings.Cut(msg, " ")
	return &driver.ServerError{Code: code, Msg: msg}
}
