package netns

// ReadSysfsInPrivateMountNS exposes ReadSysfs's fallback to the tests.
var ReadSysfsInPrivateMountNS = readSysfsInPrivateMountNS
