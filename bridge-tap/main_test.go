package bridgetap_test

import (
	"testing"

	"github.com/vmcni/vmcni/internal/testutil"
)

func TestMain(m *testing.M) { testutil.Main(m) }
