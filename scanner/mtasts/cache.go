package mtasts

import "time"

// CachedPolicy is a policy kept between fetches, as RFC 8461 §5.1 asks of
// senders: it is used again while the "_mta-sts" TXT id is unchanged and
// MaxAge has not passed since FetchedAt, and it survives a failed refresh
// within its MaxAge.
type CachedPolicy struct {
	Domain    string
	RecordID  string // the TXT record's id= when the policy was fetched
	Policy    string // the policy text as fetched
	FetchedAt time.Time
	MaxAge    time.Duration
}

// Fresh reports whether the policy may still be used at now: fetched under
// the TXT id id (any id when id is empty) and within its max_age.
func (c CachedPolicy) Fresh(id string, now time.Time) bool {
	if id != "" && c.RecordID != id {
		return false
	}
	return !now.After(c.FetchedAt.Add(c.MaxAge))
}
