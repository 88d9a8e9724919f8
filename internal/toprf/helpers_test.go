package toprf

import (
	"fmt"

	"github.com/cloudflare/circl/group"
)

type scalarT = group.Scalar

func fmtString(v any) string { return fmt.Sprintf("%v %+v %#v %s", v, v, v, v) }
