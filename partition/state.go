package partition

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/mlog/mlog/storage"
)

// partition.state holds the high watermark a replica last knew, as text
// ("0\n<hw>\n"), replaced atomically. A restarted replica starts from it
// (never above its log end) instead of from zero, so consumers of a
// restarted leader see committed records before its followers report in.
const stateFileName = "partition.state"

func loadHighWatermark(dir string) int64 {
	b, err := os.ReadFile(filepath.Join(dir, stateFileName))
	if err != nil {
		return 0
	}
	lines := strings.Fields(string(b))
	if len(lines) != 2 || lines[0] != "0" {
		return 0
	}
	hw, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || hw < 0 {
		return 0
	}
	return hw
}

func saveHighWatermark(dir string, hw int64) error {
	if err := storage.WriteFileAtomic(storage.OSFS{}, filepath.Join(dir, stateFileName), fmt.Appendf(nil, "0\n%d\n", hw)); err != nil {
		return fmt.Errorf("partition: checkpoint high watermark: %w", err)
	}
	return nil
}
