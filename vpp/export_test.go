package vpp

// GatewayMAC exposes gatewayMAC to the external tests.
var GatewayMAC = gatewayMAC
