-- CPU-only vessels: the last cumulative CPU time read from the container's
-- cgroup, and when (wall time), so a sweep sees the average since the last.
ALTER TABLE vessel_idle ADD COLUMN cpu_ns bigint;
ALTER TABLE vessel_idle ADD COLUMN cpu_read_at timestamptz;
