package campaign

import "strconv"

func parseUint(s string) (uint64, error) { return strconv.ParseUint(s, 0, 64) }
