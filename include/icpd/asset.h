/*
 * An iCloud photo or video as the planner and downloader see it: plain C,
 * decoded from a CPLMaster + CPLAsset pair by cloudkit_record.c.  No
 * json_t ever crosses this seam.
 */
#ifndef ICPD_ASSET_H
#define ICPD_ASSET_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

/* Resource slots (cloudkit-photos.md §4.3).  Order is stable: it indexes
 * asset.versions[]. */
enum asset_size {
	SIZE_ORIGINAL = 0,   /* resOriginal */
	SIZE_ALTERNATIVE,    /* resOriginalAlt (RAW+JPEG) */
	SIZE_MEDIUM,         /* resJPEGMed / resVidMed for movies */
	SIZE_THUMB,          /* resJPEGThumb / resVidSmall for movies */
	SIZE_ADJUSTED,       /* resJPEGFull (edited rendition); none for movies */
	SIZE_LIVE_ORIGINAL,  /* resOriginalVidCompl */
	SIZE_LIVE_MEDIUM,    /* resVidMed on an image */
	SIZE_LIVE_THUMB,     /* resVidSmall on an image */
	SIZE_COUNT
};

enum asset_kind { ASSET_IMAGE = 0, ASSET_MOVIE, ASSET_UNKNOWN };

struct asset_version {
	bool present;
	char *url;            /* downloadURL as received (with ${f}); owned */
	int64_t size;         /* bytes */
	char *uti;            /* res<Var>FileType, e.g. public.heic; owned, may be NULL */
	char *checksum;       /* fileChecksum (opaque id); owned */
};

struct asset {
	char *master_id;      /* CPLMaster recordName; owned */
	char *asset_id;       /* CPLAsset recordName; owned */
	char *zone;           /* zone name, e.g. PrimarySync; owned */
	char *filename;       /* decoded filenameEnc, or NULL when absent/undecodable; owned */
	char *item_type;      /* itemType UTI, NULL when absent; owned */
	enum asset_kind kind;
	int64_t asset_date;   /* ms since epoch UTC; INT64_MIN when absent */
	int64_t added_date;   /* ms; INT64_MIN when absent */
	int32_t tz_offset;    /* seconds east of UTC (timeZoneOffset), 0 when absent */
	bool favorite;
	bool hidden;
	bool deleted;         /* in Recently Deleted (isDeleted = 1) */
	bool purged;          /* a changes feed said deleted: true */
	int64_t date_expunged;/* ms, 0 when absent */
	char *caption;        /* captionEnc decoded; owned, may be NULL */
	char *description;    /* extendedDescEnc decoded; owned, may be NULL */
	char **keywords;      /* keywordsEnc plist array; owned, NULL-terminated, may be NULL */
	bool has_location;
	double latitude, longitude, altitude, speed;
	int64_t location_time;/* plist timestamp, seconds since epoch, 0 when absent */
	int orientation;      /* 0 when unknown */
	int subtype_v2;       /* assetSubtypeV2 (3 = screenshot) */
	char *adjustment_type;/* non-NULL when edited; owned */
	char *change_tag;     /* CPLAsset recordChangeTag; owned */
	char *adjustment_simple_data; /* adjustmentSimpleDataEnc base64 as received; owned */
	struct asset_version versions[SIZE_COUNT];
};

void asset_init(struct asset *a);
void asset_release(struct asset *a); /* frees every owned field; NULL ok */
/* Deep copy; dst must be released by the caller. */
void asset_copy(struct asset *dst, const struct asset *src);

#endif
