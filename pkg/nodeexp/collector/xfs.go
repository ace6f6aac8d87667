package collector

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs/xfs"

	"github.com/nodekit/nodekit/pkg/nodeexp"
	"github.com/nodekit/nodekit/pkg/nodeexp/constmetric"
)

// xfsCollector reports per-filesystem XFS statistics
// (/sys/fs/xfs/<device>/stats/stats): Amazon Linux 2023's root file system.
type xfsCollector struct {
	series  seriesCache
	fs      xfs.FS
	sysPath string
	descs   [len(xfsFamilies)]*constmetric.Desc
}

var xfsFamilies = [...]struct {
	name, help string
	value      func(*xfs.Stats) uint32
}{
	{"extent_allocation_extents_allocated_total", "Number of extents allocated for a filesystem.", func(s *xfs.Stats) uint32 { return s.ExtentAllocation.ExtentsAllocated }},
	{"extent_allocation_blocks_allocated_total", "Number of blocks allocated for a filesystem.", func(s *xfs.Stats) uint32 { return s.ExtentAllocation.BlocksAllocated }},
	{"extent_allocation_extents_freed_total", "Number of extents freed for a filesystem.", func(s *xfs.Stats) uint32 { return s.ExtentAllocation.ExtentsFreed }},
	{"extent_allocation_blocks_freed_total", "Number of blocks freed for a filesystem.", func(s *xfs.Stats) uint32 { return s.ExtentAllocation.BlocksFreed }},
	{"allocation_btree_lookups_total", "Number of allocation B-tree lookups for a filesystem.", func(s *xfs.Stats) uint32 { return s.AllocationBTree.Lookups }},
	{"allocation_btree_compares_total", "Number of allocation B-tree compares for a filesystem.", func(s *xfs.Stats) uint32 { return s.AllocationBTree.Compares }},
	{"allocation_btree_records_inserted_total", "Number of allocation B-tree records inserted for a filesystem.", func(s *xfs.Stats) uint32 { return s.AllocationBTree.RecordsInserted }},
	{"allocation_btree_records_deleted_total", "Number of allocation B-tree records deleted for a filesystem.", func(s *xfs.Stats) uint32 { return s.AllocationBTree.RecordsDeleted }},
	{"block_mapping_reads_total", "Number of block map for read operations for a filesystem.", func(s *xfs.Stats) uint32 { return s.BlockMapping.Reads }},
	{"block_mapping_writes_total", "Number of block map for write operations for a filesystem.", func(s *xfs.Stats) uint32 { return s.BlockMapping.Writes }},
	{"block_mapping_unmaps_total", "Number of block unmaps (deletes) for a filesystem.", func(s *xfs.Stats) uint32 { return s.BlockMapping.Unmaps }},
	{"block_mapping_extent_list_insertions_total", "Number of extent list insertions for a filesystem.", func(s *xfs.Stats) uint32 { return s.BlockMapping.ExtentListInsertions }},
	{"block_mapping_extent_list_deletions_total", "Number of extent list deletions for a filesystem.", func(s *xfs.Stats) uint32 { return s.BlockMapping.ExtentListDeletions }},
	{"block_mapping_extent_list_lookups_total", "Number of extent list lookups for a filesystem.", func(s *xfs.Stats) uint32 { return s.BlockMapping.ExtentListLookups }},
	{"block_mapping_extent_list_compares_total", "Number of extent list compares for a filesystem.", func(s *xfs.Stats) uint32 { return s.BlockMapping.ExtentListCompares }},
	{"block_map_btree_lookups_total", "Number of block map B-tree lookups for a filesystem.", func(s *xfs.Stats) uint32 { return s.BlockMapBTree.Lookups }},
	{"block_map_btree_compares_total", "Number of block map B-tree compares for a filesystem.", func(s *xfs.Stats) uint32 { return s.BlockMapBTree.Compares }},
	{"block_map_btree_records_inserted_total", "Number of block map B-tree records inserted for a filesystem.", func(s *xfs.Stats) uint32 { return s.BlockMapBTree.RecordsInserted }},
	{"block_map_btree_records_deleted_total", "Number of block map B-tree records deleted for a filesystem.", func(s *xfs.Stats) uint32 { return s.BlockMapBTree.RecordsDeleted }},
	{"directory_operation_lookup_total", "Number of file name directory lookups which miss the operating systems directory name lookup cache.", func(s *xfs.Stats) uint32 { return s.DirectoryOperation.Lookups }},
	{"directory_operation_create_total", "Number of times a new directory entry was created for a filesystem.", func(s *xfs.Stats) uint32 { return s.DirectoryOperation.Creates }},
	{"directory_operation_remove_total", "Number of times an existing directory entry was created for a filesystem.", func(s *xfs.Stats) uint32 { return s.DirectoryOperation.Removes }},
	{"directory_operation_getdents_total", "Number of times the directory getdents operation was performed for a filesystem.", func(s *xfs.Stats) uint32 { return s.DirectoryOperation.Getdents }},
	{"inode_operation_attempts_total", "Number of times the OS looked for an XFS inode in the inode cache.", func(s *xfs.Stats) uint32 { return s.InodeOperation.Attempts }},
	{"inode_operation_found_total", "Number of times the OS looked for and found an XFS inode in the inode cache.", func(s *xfs.Stats) uint32 { return s.InodeOperation.Found }},
	{"inode_operation_recycled_total", "Number of times the OS found an XFS inode in the cache, but could not use it as it was being recycled.", func(s *xfs.Stats) uint32 { return s.InodeOperation.Recycle }},
	{"inode_operation_missed_total", "Number of times the OS looked for an XFS inode in the cache, but did not find it.", func(s *xfs.Stats) uint32 { return s.InodeOperation.Missed }},
	{"inode_operation_duplicates_total", "Number of times the OS tried to add a missing XFS inode to the inode cache, but found it had already been added by another process.", func(s *xfs.Stats) uint32 { return s.InodeOperation.Duplicate }},
	{"inode_operation_reclaims_total", "Number of times the OS reclaimed an XFS inode from the inode cache to free memory for another purpose.", func(s *xfs.Stats) uint32 { return s.InodeOperation.Reclaims }},
	{"inode_operation_attribute_changes_total", "Number of times the OS explicitly changed the attributes of an XFS inode.", func(s *xfs.Stats) uint32 { return s.InodeOperation.AttributeChange }},
	{"read_calls_total", "Number of read(2) system calls made to files in a filesystem.", func(s *xfs.Stats) uint32 { return s.ReadWrite.Read }},
	{"write_calls_total", "Number of write(2) system calls made to files in a filesystem.", func(s *xfs.Stats) uint32 { return s.ReadWrite.Write }},
	{"vnode_active_total", "Number of vnodes not on free lists for a filesystem.", func(s *xfs.Stats) uint32 { return s.Vnode.Active }},
	{"vnode_allocate_total", "Number of times vn_alloc called for a filesystem.", func(s *xfs.Stats) uint32 { return s.Vnode.Allocate }},
	{"vnode_get_total", "Number of times vn_get called for a filesystem.", func(s *xfs.Stats) uint32 { return s.Vnode.Get }},
	{"vnode_hold_total", "Number of times vn_hold called for a filesystem.", func(s *xfs.Stats) uint32 { return s.Vnode.Hold }},
	{"vnode_release_total", "Number of times vn_rele called for a filesystem.", func(s *xfs.Stats) uint32 { return s.Vnode.Release }},
	{"vnode_reclaim_total", "Number of times vn_reclaim called for a filesystem.", func(s *xfs.Stats) uint32 { return s.Vnode.Reclaim }},
	{"vnode_remove_total", "Number of times vn_remove called for a filesystem.", func(s *xfs.Stats) uint32 { return s.Vnode.Remove }},
}

func newXFSCollector(cfg *Config, _ *slog.Logger) (nodeexp.Collector, error) {
	fs, err := xfs.NewFS(cfg.ProcPath, cfg.SysPath)
	if err != nil {
		return nil, fmt.Errorf("opening procfs %q and sysfs %q: %w", cfg.ProcPath, cfg.SysPath, err)
	}
	c := &xfsCollector{fs: fs, sysPath: cfg.SysPath}
	for i, f := range xfsFamilies {
		c.descs[i] = constmetric.NewDesc("node_xfs_"+f.name, f.help, []string{"device"}, nil)
	}
	return c, nil
}

func (c *xfsCollector) Update(_ context.Context, ch *nodeexp.Sink) error {
	// With the module loaded, /sys/fs/xfs holds "stats" and one directory
	// per mounted XFS file system.
	if mounted, err := anyEntry(filepath.Join(c.sysPath, "fs/xfs"), except("stats")); err == nil && !mounted {
		return nil
	}
	stats, err := c.fs.SysStats()
	if err != nil {
		return fmt.Errorf("failed to retrieve XFS stats: %w", err)
	}
	for _, s := range stats {
		for i, f := range xfsFamilies {
			c.series.send(ch, c.descs[i], prometheus.CounterValue, float64(f.value(s)), s.Name)
		}
	}
	return nil
}
