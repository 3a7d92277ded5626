package storecodec

import (
	"encoding/binary"
	"time"

	"github.com/nhisync/nhisync"
)

// appendRecordV1 and appendLinkV1 are the version 1 encoders, kept to
// test that stores written by them still read.
func appendRecordV1(b []byte, r *nhisync.Record) []byte {
	b = append(b, 1)
	b = appendTimeV1(b, r.Created)
	b = appendTimeV1(b, r.Updated)
	b = binary.AppendUvarint(b, uint64(len(r.Fields)))
	for _, name := range SortedKeys(r.Fields) {
		b = appendStr(b, name)
		g := r.Fields[name]
		if g == nil {
			b = append(b, gNil)
			continue
		}
		var flags byte
		if g.Actor != "" {
			flags |= gActor
		}
		if !g.SourceTime.IsZero() {
			flags |= gSourceTime
		}
		b = append(b, flags)
		b = appendValue(b, g.Value)
		b = appendStr(b, g.Source)
		b = appendStr(b, g.Rule)
		b = appendTimeV1(b, g.At)
		if flags&gActor != 0 {
			b = appendStr(b, g.Actor)
		}
		if flags&gSourceTime != 0 {
			b = appendTimeV1(b, g.SourceTime)
		}
	}
	return b
}

func appendLinkV1(b []byte, l *nhisync.Link) []byte {
	b = append(b, 1)
	b = appendTimeV1(b, l.FirstSeen)
	b = appendTimeV1(b, l.SeenAt)
	b = appendTimeV1(b, l.GoneAt)
	b = appendTimeV1(b, l.Modified)
	b = binary.AppendUvarint(b, uint64(len(l.Fields)))
	for _, name := range SortedKeys(l.Fields) {
		b = appendStr(b, name)
		fs := l.Fields[name]
		if fs == nil {
			b = append(b, fNil)
			continue
		}
		var flags byte
		if fs.Asserted.Equal(fs.Shadow) {
			flags |= fSame
		}
		if !fs.Since.IsZero() {
			flags |= fSince
		}
		if !fs.SourceTime.IsZero() {
			flags |= fSourceTime
		}
		if fs.Actor != "" {
			flags |= fActor
		}
		if fs.Report != nil {
			flags |= fReport
		}
		b = append(b, flags)
		b = appendValue(b, fs.Shadow)
		if flags&fSame == 0 {
			b = appendValue(b, fs.Asserted)
		}
		if flags&fSince != 0 {
			b = appendTimeV1(b, fs.Since)
		}
		if flags&fSourceTime != 0 {
			b = appendTimeV1(b, fs.SourceTime)
		}
		if flags&fActor != 0 {
			b = appendStr(b, fs.Actor)
		}
		if flags&fReport != 0 {
			b = appendValue(b, *fs.Report)
		}
	}
	return b
}

func appendTimeV1(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, 0)
	}
	b = append(b, 1)
	b = binary.AppendVarint(b, t.Unix())
	return binary.AppendUvarint(b, uint64(t.Nanosecond()))
}
