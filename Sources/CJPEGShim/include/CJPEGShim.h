#ifndef CJPEGSHIM_H
#define CJPEGSHIM_H
/*
 * The C half of the Images module: libjpeg and libpng's classic API both report fatal
 * errors by longjmp, and Swift cannot call setjmp. Every function here sets its own
 * jump target before it calls into the library, turns a longjmp into a status code,
 * and keeps the library's message for the caller. Nothing here prints or exits.
 *
 * libpng's simplified API would need no C, but it gamma-converts 16-bit files (it
 * treats them as linear), composites or premultiplies alpha in some paths and applies
 * gAMA chunks; the classic API gives exactly the transforms we ask for, so PNG lives
 * here too (the target links png16 beside jpeg).
 *
 * Readers are two-phase: `*_read_header` parses up to the first image data and reports
 * the declared size, so the caller can refuse a decompression bomb before any pixel
 * memory exists; `*_read_pixels` then fills a buffer the caller allocated. The input
 * bytes must stay valid and unmoved from create to destroy.
 *
 * This header includes only standard headers, so Swift sees opaque handles.
 */
#include <stddef.h>
#include <stdint.h>

/* Status codes shared by the PNG and JPEG functions. */
enum {
    LG_OK = 0,
    LG_ERR_CORRUPT = 1,     /* the library rejected the data */
    LG_ERR_TRUNCATED = 2,   /* the data ended before the image did */
    LG_ERR_UNSUPPORTED = 3, /* a valid file of a kind we do not decode */
    LG_ERR_NOMEM = 4,       /* malloc failed */
    LG_ERR_USAGE = 5        /* called out of order or with bad arguments */
};

/* Frees a buffer returned by an encoder. */
void lg_free(void *p);

/* ---------------------------------------------------------------- PNG ---- */

typedef struct lg_png_reader lg_png_reader;

typedef struct {
    uint32_t width;
    uint32_t height;
    int channels;    /* after expansion: 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA */
    int bit_depth;   /* as stored: 1, 2, 4, 8 or 16 */
    int color_type;  /* as stored (PNG_COLOR_TYPE_*) */
    int interlaced;  /* 1 for Adam7 */
} lg_png_info;

/* NULL only when out of memory. */
lg_png_reader *lg_png_create(const uint8_t *data, size_t size);
/* Reads the chunks before the image data and sets the 8-bit output transforms:
 * palette -> RGB, gray < 8 bits -> 8 bits, tRNS -> alpha channel, 16 -> 8 bits by
 * rounding (v * 255 / 65535), Adam7 de-interlacing. gAMA, cHRM, iCCP, sBIT, bKGD are
 * ignored (as Pillow ignores them): samples come out as stored. */
int lg_png_read_header(lg_png_reader *r, lg_png_info *info);
/* Fills height rows of width * channels bytes, `row_stride` bytes apart, then reads
 * to IEND (a file cut anywhere, even after the last row, is LG_ERR_TRUNCATED). */
int lg_png_read_pixels(lg_png_reader *r, uint8_t *out, size_t row_stride);
/* The error message of the last failing call (or ""). */
const char *lg_png_message(const lg_png_reader *r);
/* Number of libpng warnings (ancillary-chunk problems; pixels are unaffected). */
int lg_png_num_warnings(const lg_png_reader *r);
void lg_png_destroy(lg_png_reader *r);

/* Encodes 8-bit pixels (channels 1-4, rows `row_stride` bytes apart) as a
 * non-interlaced PNG with zlib `level` (0-9). On LG_OK, *out (free with lg_free)
 * holds *out_size bytes; otherwise `message` (if not NULL) says why. */
int lg_png_encode(const uint8_t *pixels, uint32_t width, uint32_t height, int channels,
                  size_t row_stride, int level, uint8_t **out, size_t *out_size,
                  char *message, size_t message_size);

/* --------------------------------------------------------------- JPEG ---- */

typedef struct lg_jpeg_reader lg_jpeg_reader;

/* The colour space as stored in the file. */
enum {
    LG_JPEG_GRAY = 1,
    LG_JPEG_RGB = 2,   /* YCbCr or RGB: both decode to RGB */
    LG_JPEG_CMYK = 3,
    LG_JPEG_YCCK = 4,
    LG_JPEG_OTHER = 5
};

typedef struct {
    uint32_t width;
    uint32_t height;
    int components;   /* as stored */
    int color_space;  /* LG_JPEG_* */
    int progressive;  /* 1 for a progressive (multi-scan) file */
    int channels;     /* what lg_jpeg_read_pixels writes: 1 or 3 (0 if unsupported) */
} lg_jpeg_info;

/* NULL only when out of memory. `max_scans` bounds the number of scans (SOS markers)
 * a progressive file may have: each scan re-walks the whole coefficient buffer, so a
 * tiny file with thousands of scans is a CPU bomb (0 means the default, 1000). */
lg_jpeg_reader *lg_jpeg_create(const uint8_t *data, size_t size, int max_scans);
int lg_jpeg_read_header(lg_jpeg_reader *r, lg_jpeg_info *info);
/* Decodes with libjpeg's defaults (islow IDCT, fancy upsampling: Pillow's settings)
 * into height rows of width * channels bytes. Returns LG_OK even when libjpeg only
 * warned: a truncated file decodes "successfully" with gray padding, so the caller
 * must check lg_jpeg_num_warnings / lg_jpeg_saw_eof. */
int lg_jpeg_read_pixels(lg_jpeg_reader *r, uint8_t *out, size_t row_stride);
/* libjpeg's warning count (cinfo->err->num_warnings, counted by our handler). */
long lg_jpeg_num_warnings(const lg_jpeg_reader *r);
/* 1 when one of the warnings was "Premature end of JPEG file" (JWRN_JPEG_EOF). */
int lg_jpeg_saw_eof(const lg_jpeg_reader *r);
/* The error message of the last failing call, else the first warning, else "". */
const char *lg_jpeg_message(const lg_jpeg_reader *r);
void lg_jpeg_destroy(lg_jpeg_reader *r);

/* Encodes 8-bit gray (channels 1) or RGB (channels 3) pixels as a JFIF JPEG at
 * `quality` (1-100), 4:2:0 for RGB, optionally progressive. Same ownership as PNG. */
int lg_jpeg_encode(const uint8_t *pixels, uint32_t width, uint32_t height, int channels,
                   size_t row_stride, int quality, int progressive, uint8_t **out,
                   size_t *out_size, char *message, size_t message_size);

#endif
