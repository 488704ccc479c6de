# rename-split.sed: the names lf_schema and lf_replay had, and what they are
# called since those modules were split (lf_catalog, lf_rebuild, lf_diff,
# lf_promote; lf_topic, lf_rewind), and lf_dl_stats_t. Apply with
#   sed -i -E -f tools/rename-split.sed FILE...
# (GNU sed: \b and \n in replacements).
s/^#include "lf_schema\.h"$/#include "lf_catalog.h"\n#include "lf_diff.h"\n#include "lf_promote.h"\n#include "lf_rebuild.h"/
s/^#include "lf_replay\.h"$/#include "lf_rewind.h"\n#include "lf_topic.h"/
s/\blf_schema_check_name\b/lf_catalog_check_name/g
s/\blf_schema_twin_create\b/lf_rebuild_create/g
s/\blf_schema_twin_complete\b/lf_rebuild_complete/g
s/\blf_schema_counts\b/lf_rebuild_counts/g
s/\blf_order_e\b/lf_rebuild_order_e/g
s/\blf_order_t\b/lf_rebuild_order_t/g
s/\blf_order_parse\b/lf_rebuild_order_parse/g
s/\bLF_ORDER_LEAD\b/LF_REBUILD_ORDER_LEAD/g
s/\bLF_ORDER_TIME\b/LF_REBUILD_ORDER_TIME/g
s/\bLF_ORDER_NONE\b/LF_REBUILD_ORDER_NONE/g
s/\blf_dbsource_s\b/lf_rebuild_source_s/g
s/\blf_dbsource_t\b/lf_rebuild_source_t/g
s/\blf_dbsource_open\b/lf_rebuild_source_open/g
s/\blf_dbsource_total\b/lf_rebuild_source_total/g
s/\blf_dbsource_next\b/lf_rebuild_source_next/g
s/\blf_dbsource_copy_rest\b/lf_rebuild_source_copy_rest/g
s/\blf_dbsource_close\b/lf_rebuild_source_close/g
s/\blf_schema_diff\b/lf_diff_compare/g
s/\blf_schema_promote\b/lf_promote_swap/g
s/\blf_replay_consumer_new\b/lf_topic_consumer_new/g
s/\blf_replay_partitions\b/lf_topic_partitions/g
s/\blf_replay_offsets_for_time\b/lf_topic_offsets_for_time/g
s/\blf_replay_group_members\b/lf_topic_group_members/g
s/\blf_part_s\b/lf_topic_part_s/g
s/\blf_part_t\b/lf_topic_part_t/g
s/\blf_reader_s\b/lf_topic_reader_s/g
s/\blf_reader_t\b/lf_topic_reader_t/g
s/\blf_reader_new\b/lf_topic_reader_new/g
s/\blf_reader_next\b/lf_topic_reader_next/g
s/\blf_reader_done\b/lf_topic_reader_done/g
s/\blf_reader_total\b/lf_topic_reader_total/g
s/\blf_reader_destroy\b/lf_topic_reader_destroy/g
s/\blf_dl_stats_s\b/lf_retry_counts_s/g
s/\blf_dl_stats_t\b/lf_retry_counts_t/g
