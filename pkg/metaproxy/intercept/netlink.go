package intercept

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
)

// Netlink discovers host addresses in the current network namespace.
type Netlink struct{}

// DefaultRouteIPv4 implements HostAddr.
func (Netlink) DefaultRouteIPv4() (netip.Addr, error) {
	routes, err := netlink.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("listing IPv4 routes: %w", err)
	}
	for _, r := range routes {
		if r.Dst != nil {
			if ones, _ := r.Dst.Mask.Size(); ones != 0 {
				continue
			}
		}
		link, err := netlink.LinkByIndex(r.LinkIndex)
		if err != nil {
			return netip.Addr{}, fmt.Errorf("finding the default route's interface %d: %w", r.LinkIndex, err)
		}
		addrs, err := netlink.AddrList(link, netlink.FAMILY_V4)
		if err != nil {
			return netip.Addr{}, fmt.Errorf("listing addresses of %s: %w", link.Attrs().Name, err)
		}
		for _, a := range addrs {
			if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Unmap().IsGlobalUnicast() {
				return ip.Unmap(), nil
			}
		}
	}
	return netip.Addr{}, errors.New("no IPv4 default route with an address; set --host-ip")
}

// InInterface implements Router: the interface the node routes ip through,
// or its master if it is a bridge port (iptables -i then sees the bridge).
func (Netlink) InInterface(ip netip.Addr) (string, error) {
	routes, err := netlink.RouteGet(ip.AsSlice())
	if err != nil {
		return "", fmt.Errorf("looking up the route to %s: %w", ip, err)
	}
	if len(routes) == 0 {
		return "", fmt.Errorf("no route to %s", ip)
	}
	link, err := netlink.LinkByIndex(routes[0].LinkIndex)
	if err != nil {
		return "", fmt.Errorf("finding the interface of the route to %s: %w", ip, err)
	}
	if m := link.Attrs().MasterIndex; m != 0 {
		master, err := netlink.LinkByIndex(m)
		if err != nil {
			return "", fmt.Errorf("finding the master of %s: %w", link.Attrs().Name, err)
		}
		if master.Type() == "bridge" {
			return master.Attrs().Name, nil
		}
	}
	return link.Attrs().Name, nil
}
