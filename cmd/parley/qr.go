package main

import (
	"strings"

	qrcode "github.com/skip2/go-qrcode"
)

// renderQR draws content as a QR code for a terminal with Unicode half
// blocks: each character cell holds two modules, the upper one in the
// foreground colour and the lower one in the background colour. The
// colours are set explicitly (white light modules, black dark modules) so
// the code scans the same on dark and light terminal themes; the quiet
// zone is part of the bitmap.
func renderQR(content []byte) (string, error) {
	q, err := qrcode.New(string(content), qrcode.Medium)
	if err != nil {
		return "", err
	}
	bits := q.Bitmap() // true = dark module
	const (
		colours = "\x1b[97;40m" // bright white on black
		reset   = "\x1b[0m"
	)
	var b strings.Builder
	for y := 0; y < len(bits); y += 2 {
		b.WriteString(colours)
		for x := range bits[y] {
			topLight := !bits[y][x]
			bottomLight := y+1 >= len(bits) || !bits[y+1][x] // past the end: quiet zone
			switch {
			case topLight && bottomLight:
				b.WriteRune('█')
			case topLight:
				b.WriteRune('▀')
			case bottomLight:
				b.WriteRune('▄')
			default:
				b.WriteRune(' ')
			}
		}
		b.WriteString(reset)
		b.WriteByte('\n')
	}
	return b.String(), nil
}
