"""wrstat stats files to storage usage reports, as lurge made them, far faster.

wrstat (wtsi-ssg/wrstat) writes one gzipped stats file per volume: a line per file system
entry, tab-separated: path, size, uid, gid, atime, mtime, ctime, type, inode, nlink, dev,
and from wrstat 6.4 the apparent size. The path is base64 (to wrstat 5.0), base64 in a
lexically ordered alphabet (5.1), or Go-quoted (5.2 on). Files are named
``<YYYYMMDD>_<volume>.<a>.<b>.stats.gz`` up to wrstat 6.1 and
``<YYYYMMDD-hhmmss>_<mount path, "/" written as U+FF0F>/stats.gz`` from 6.2.

The stages: ``read`` (find the newest file per volume, decompress, cut into line-aligned
chunks), ``usage`` (parse chunks into numpy columns and tally usage per group, base
directory, sub-directory and user; replicated), ``report`` (merge the tallies, write the
reports). ``gen`` writes sample files of every era.
"""
