package fanout_test

import (
	"testing"

	"github.com/parleychat/parley/internal/fanout"
	"github.com/parleychat/parley/internal/fanout/bustest"
)

func TestConformance(t *testing.T) {
	bustest.Run(t, func(t *testing.T) (a, b bustest.Bus) {
		l := fanout.NewLocal()
		return l, l
	})
}
