// JPEG and PNG decoding/encoding (image.h) and ImageFolder.
//
// libjpeg and libpng report errors by calling a handler that must not return. Ours format the message and
// longjmp back to a setjmp in the C-style functions below; those functions keep only trivially
// destructible locals between setjmp and the longjmp (the output vector is owned by the caller), so no
// C++ destructor is skipped. The C++ wrappers then throw nabla::Error with the file name.
#include "data/image.h"

#include <csetjmp>
#include <cstdio>
#include <cstring>
// jpeglib.h needs <cstdio> before it.
#include <jpeglib.h>
#include <jerror.h>
#include <png.h>

#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <map>
#include <set>

#include "data/file_bytes.h"
#include "engine/error.h"

namespace nabla::data {
namespace {

namespace fs = std::filesystem;

// Pixels as decoded, before ImageMode: channels is 1, 3 or (JPEG CMYK) 4.
struct RawImage {
  std::vector<uint8_t> pixels;
  int64_t height = 0, width = 0, channels = 0;
  bool adobe_inverted = false;  // CMYK stored inverted (Photoshop's convention, flagged by an Adobe marker)
};

struct DecodeError {
  char message[JMSG_LENGTH_MAX + 64] = {0};
  size_t at = 0;  // byte offset the decoder had reached
  // Set when the header declares more pixels than max_image_pixels(): nothing was allocated.
  bool too_large = false;
  int64_t width = 0, height = 0;
};

std::atomic<int64_t> g_max_image_pixels{-1};  // -1: not read from the environment yet

// Grows `pixels` to hold `need` bytes, doubling up to `total`: memory follows the rows actually decoded,
// so a file that declares a large image and then ends costs what it holds, not what it claims.
void grow_to(std::vector<uint8_t>* pixels, size_t need, size_t total) {
  if (pixels->size() >= need) return;
  pixels->resize(std::min(total, std::max(need, 2 * pixels->size())));
}

// ---- JPEG ---------------------------------------------------------------------------------------

struct JpegErrorManager {
  jpeg_error_mgr pub;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

[[noreturn]] void jpeg_error_exit(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<JpegErrorManager*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, err->message);
  std::longjmp(err->jump, 1);
}

// Warnings are ignored (ImageNet has many "extraneous bytes before marker" files that decode fine), except
// a premature end of data: libjpeg would pad the image with gray, we report a truncated file.
void jpeg_emit_message(j_common_ptr cinfo, int level) {
  if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) jpeg_error_exit(cinfo);
}

bool decode_jpeg_raw(const uint8_t* data, size_t size, RawImage* out, DecodeError* error) {
  jpeg_decompress_struct cinfo;
  std::memset(&cinfo, 0, sizeof cinfo);
  JpegErrorManager err;
  cinfo.err = jpeg_std_error(&err.pub);
  err.pub.error_exit = jpeg_error_exit;
  err.pub.emit_message = jpeg_emit_message;
  if (setjmp(err.jump)) {
    std::snprintf(error->message, sizeof error->message, "%s", err.message);
    // Past the end, libjpeg's memory source points at a fake EOI marker of its own.
    const uint8_t* at = cinfo.src ? cinfo.src->next_input_byte : data;
    error->at = at >= data && at <= data + size ? static_cast<size_t>(at - data) : size;
    jpeg_destroy_decompress(&cinfo);
    return false;
  }
  jpeg_create_decompress(&cinfo);
  // libjpeg's own buffers (a progressive image keeps every coefficient: 2 bytes per pixel and component)
  // are bounded too; past this it stops with "Backing store not supported" instead of allocating.
  cinfo.mem->max_memory_to_use = static_cast<long>(
      std::min<int64_t>(8 * max_image_pixels() + (int64_t{64} << 20), std::numeric_limits<long>::max() / 2));
  jpeg_mem_src(&cinfo, data, static_cast<unsigned long>(size));
  jpeg_read_header(&cinfo, TRUE);
  if (static_cast<int64_t>(cinfo.image_width) * cinfo.image_height > max_image_pixels()) {
    error->too_large = true;
    error->width = cinfo.image_width;
    error->height = cinfo.image_height;
    jpeg_destroy_decompress(&cinfo);
    return false;
  }
  switch (cinfo.jpeg_color_space) {
    case JCS_GRAYSCALE:
      cinfo.out_color_space = JCS_GRAYSCALE;
      break;
    case JCS_CMYK:
    case JCS_YCCK:
      cinfo.out_color_space = JCS_CMYK;  // libjpeg has no CMYK -> RGB; converted below
      break;
    default:
      cinfo.out_color_space = JCS_RGB;
  }
  jpeg_start_decompress(&cinfo);
  out->height = cinfo.output_height;
  out->width = cinfo.output_width;
  out->channels = cinfo.output_components;
  out->adobe_inverted = cinfo.saw_Adobe_marker;
  size_t stride = static_cast<size_t>(out->width * out->channels);
  const size_t total = stride * static_cast<size_t>(out->height);
  while (cinfo.output_scanline < cinfo.output_height) {
    grow_to(&out->pixels, stride * (cinfo.output_scanline + 1), total);
    JSAMPROW row = out->pixels.data() + stride * cinfo.output_scanline;
    jpeg_read_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  return true;
}

struct JpegDest {
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
};

bool encode_jpeg_raw(const uint8_t* pixels, int64_t h, int64_t w, int64_t c, int quality, JpegDest* dest,
                     DecodeError* error) {
  jpeg_compress_struct cinfo;
  std::memset(&cinfo, 0, sizeof cinfo);
  JpegErrorManager err;
  cinfo.err = jpeg_std_error(&err.pub);
  err.pub.error_exit = jpeg_error_exit;
  if (setjmp(err.jump)) {
    std::snprintf(error->message, sizeof error->message, "%s", err.message);
    jpeg_destroy_compress(&cinfo);
    return false;
  }
  jpeg_create_compress(&cinfo);
  jpeg_mem_dest(&cinfo, &dest->buffer, &dest->size);
  cinfo.image_width = static_cast<JDIMENSION>(w);
  cinfo.image_height = static_cast<JDIMENSION>(h);
  cinfo.input_components = static_cast<int>(c);
  cinfo.in_color_space = c == 1 ? JCS_GRAYSCALE : c == 3 ? JCS_RGB : JCS_CMYK;
  jpeg_set_defaults(&cinfo);
  jpeg_set_quality(&cinfo, quality, TRUE);
  for (int i = 0; i < cinfo.num_components; ++i)
    cinfo.comp_info[i].h_samp_factor = cinfo.comp_info[i].v_samp_factor = 1;
  jpeg_start_compress(&cinfo, TRUE);
  size_t stride = static_cast<size_t>(w * c);
  while (cinfo.next_scanline < cinfo.image_height) {
    JSAMPROW row = const_cast<uint8_t*>(pixels) + stride * cinfo.next_scanline;
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  jpeg_destroy_compress(&cinfo);
  return true;
}

// ---- PNG ----------------------------------------------------------------------------------------

struct PngIo {
  const uint8_t* data = nullptr;
  size_t size = 0, pos = 0;
  std::vector<uint8_t>* sink = nullptr;  // encoding
  DecodeError* error = nullptr;
};

[[noreturn]] void png_error_fn(png_structp png, png_const_charp message) {
  auto* io = static_cast<PngIo*>(png_get_error_ptr(png));
  std::snprintf(io->error->message, sizeof io->error->message, "%s", message);
  io->error->at = io->pos;
  png_longjmp(png, 1);
}

void png_warning_fn(png_structp, png_const_charp) {}  // e.g. "iCCP: known incorrect sRGB profile"

void png_read_fn(png_structp png, png_bytep out, size_t n) {
  auto* io = static_cast<PngIo*>(png_get_io_ptr(png));
  if (io->size - io->pos < n) {
    io->pos = io->size;
    png_error(png, "unexpected end of file");
  }
  std::memcpy(out, io->data + io->pos, n);
  io->pos += n;
}

void png_write_fn(png_structp png, png_bytep in, size_t n) {
  auto* io = static_cast<PngIo*>(png_get_io_ptr(png));
  io->sink->insert(io->sink->end(), in, in + n);
}

void png_flush_fn(png_structp) {}

bool decode_png_raw(PngIo* io, RawImage* out) {
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, io, png_error_fn, png_warning_fn);
  if (!png) {
    std::snprintf(io->error->message, sizeof io->error->message, "cannot create a libpng reader");
    return false;
  }
  png_infop info = png_create_info_struct(png);
  if (!info) {
    png_destroy_read_struct(&png, nullptr, nullptr);
    return false;
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &info, nullptr);
    return false;
  }
  png_set_read_fn(png, io, png_read_fn);
  png_read_info(png, info);
  {
    const int64_t w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    if (w * h > max_image_pixels()) {
      io->error->too_large = true;
      io->error->width = w;
      io->error->height = h;
      png_error(png, "image too large");
    }
  }
  png_set_expand(png);    // palette -> RGB, gray < 8 bits -> 8 bits, tRNS -> alpha
  png_set_scale_16(png);  // 16 -> 8 bits with rounding
  png_set_strip_alpha(png);
  int num_passes = png_set_interlace_handling(png);
  png_read_update_info(png, info);
  out->height = png_get_image_height(png, info);
  out->width = png_get_image_width(png, info);
  out->channels = png_get_channels(png, info);
  size_t stride = png_get_rowbytes(png, info);
  if (stride != static_cast<size_t>(out->width * out->channels))
    png_error(png, "unexpected row size after conversion");
  const size_t total = stride * static_cast<size_t>(out->height);
  // Row by row rather than png_read_image: no row-pointer array for a longjmp to leak. An interlaced
  // image takes every row once per pass; libpng merges each pass into the row (so the first pass grows
  // the buffer and the others find it whole).
  for (int pass = 0; pass < num_passes; ++pass)
    for (int64_t y = 0; y < out->height; ++y) {
      grow_to(&out->pixels, stride * static_cast<size_t>(y + 1), total);
      png_read_row(png, out->pixels.data() + stride * y, nullptr);
    }
  png_read_end(png, nullptr);
  png_destroy_read_struct(&png, &info, nullptr);
  return true;
}

// rows: h rows of stride bytes (16-bit samples big-endian). color_type and bit_depth as libpng's.
bool encode_png_raw(PngIo* io, const uint8_t* rows, int64_t h, int64_t w, size_t stride, int color_type,
                    int bit_depth, const png_color* palette, int palette_size) {
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, io, png_error_fn, png_warning_fn);
  if (!png) return false;
  png_infop info = png_create_info_struct(png);
  if (!info) {
    png_destroy_write_struct(&png, nullptr);
    return false;
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    return false;
  }
  png_set_write_fn(png, io, png_write_fn, png_flush_fn);
  png_set_IHDR(png, info, static_cast<png_uint_32>(w), static_cast<png_uint_32>(h), bit_depth, color_type,
               PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  if (palette) png_set_PLTE(png, info, palette, palette_size);
  png_write_info(png, info);
  for (int64_t y = 0; y < h; ++y) png_write_row(png, rows + stride * y);
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return true;
}

// ---- colour conversion --------------------------------------------------------------------------

Tensor to_tensor(const RawImage& raw, ImageMode mode) {
  int64_t n = raw.height * raw.width;
  int64_t src_c = raw.channels;
  int64_t dst_c = mode == ImageMode::gray ? 1 : mode == ImageMode::rgb ? 3 : (src_c == 1 ? 1 : 3);
  Tensor out = Tensor::empty({raw.height, raw.width, dst_c}, DType::u8);
  uint8_t* dst = out.data<uint8_t>();
  const uint8_t* src = raw.pixels.data();
  for (int64_t p = 0; p < n; ++p) {
    uint32_t r, g, b;
    const uint8_t* s = src + p * src_c;
    if (src_c == 1) {
      r = g = b = s[0];
    } else if (src_c == 3) {
      r = s[0], g = s[1], b = s[2];
    } else {  // CMYK: R = (255 - C)(255 - K) / 255, with C and K stored inverted under an Adobe marker
      uint32_t k = raw.adobe_inverted ? s[3] : 255 - s[3];
      auto channel = [&](uint8_t v) { return ((raw.adobe_inverted ? v : 255 - v) * k + 127) / 255; };
      r = channel(s[0]), g = channel(s[1]), b = channel(s[2]);
    }
    uint8_t* d = dst + p * dst_c;
    if (dst_c == 1)
      d[0] = src_c == 1 ? static_cast<uint8_t>(r)
                        : static_cast<uint8_t>((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16);
    else
      d[0] = static_cast<uint8_t>(r), d[1] = static_cast<uint8_t>(g), d[2] = static_cast<uint8_t>(b);
  }
  return out;
}

// A contiguous u8 [H, W, C] copy of an image tensor ([H, W] counts as one channel).
Tensor as_hwc_u8(const Tensor& image, const char* who) {
  NABLA_CHECK(image.defined() && (image.dim() == 2 || image.dim() == 3), who,
              ": expected an image [H, W] or [H, W, C], got ", image.defined() ? image.shape() : Shape{});
  Tensor x = image.dim() == 2 ? image.unsqueeze(2) : image;
  NABLA_CHECK(x.size(0) > 0 && x.size(1) > 0, who, ": expected a non-empty image, got ", image.shape());
  return x.contiguous();
}

std::string lower(std::string s) {
  for (char& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return s;
}

bool is_image_file(const fs::path& p) {
  std::string ext = lower(p.extension().string());
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png";
}

}  // namespace

int64_t max_image_pixels() {
  int64_t v = g_max_image_pixels.load(std::memory_order_relaxed);
  if (v >= 0) return v;
  v = kDefaultMaxImagePixels;
  if (const char* env = std::getenv("NABLA_MAX_IMAGE_PIXELS"); env && *env) {
    char* end = nullptr;
    errno = 0;
    long long n = std::strtoll(env, &end, 10);
    NABLA_CHECK(*end == '\0' && errno == 0 && n > 0, "NABLA_MAX_IMAGE_PIXELS='",
                std::string(env).substr(0, 40), "': expected a positive number of pixels");
    v = n;
  }
  g_max_image_pixels.store(v, std::memory_order_relaxed);
  return v;
}

void set_max_image_pixels(int64_t pixels) {
  NABLA_CHECK(pixels > 0, "set_max_image_pixels: expected a positive number of pixels, got ", pixels);
  g_max_image_pixels.store(pixels, std::memory_order_relaxed);
}

Tensor decode_image(const uint8_t* bytes, size_t size, const std::string& name, ImageMode mode) {
  RawImage raw;
  DecodeError error;
  auto check_size = [&](const char* format) {
    NABLA_CHECK(!error.too_large, "image: ", name, ": the ", format, " header declares ", error.width, "x",
                error.height, " = ", error.width * error.height, " pixels, more than the limit of ",
                max_image_pixels(), " (raise it with NABLA_MAX_IMAGE_PIXELS or data::set_max_image_pixels)");
  };
  if (size >= 3 && bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF) {
    bool ok = decode_jpeg_raw(bytes, size, &raw, &error);
    check_size("JPEG");
    NABLA_CHECK(ok, "image: ", name, ": corrupt JPEG near byte ", error.at, " of ", size, ": ",
                error.message);
  } else if (size >= 8 && png_sig_cmp(bytes, 0, 8) == 0) {
    PngIo io{bytes, size, 0, nullptr, &error};
    bool ok = decode_png_raw(&io, &raw);
    check_size("PNG");
    NABLA_CHECK(ok, "image: ", name, ": corrupt PNG near byte ", error.at, " of ", size, ": ", error.message);
  } else {
    std::string head;
    for (size_t i = 0; i < std::min<size_t>(size, 4); ++i)
      head += str_cat(i ? " " : "", hex32(bytes[i]).substr(8));
    fail("image: ", name, ": not a JPEG or PNG file (", size, " bytes, starting ", size ? head : "<empty>",
         ")");
  }
  return to_tensor(raw, mode);
}

Tensor read_image(const std::string& path, ImageMode mode) {
  FileBytes file = read_file_bytes(path, "image");
  return decode_image(file.bytes.data(), file.bytes.size(), path, mode);
}

std::vector<uint8_t> encode_jpeg(const Tensor& image, int quality) {
  NABLA_CHECK(image.defined() && image.dtype() == DType::u8, "encode_jpeg: expected a u8 image, got ",
              image.defined() ? dtype_name(image.dtype()) : "an undefined tensor");
  Tensor x = as_hwc_u8(image, "encode_jpeg");
  int64_t c = x.size(2);
  NABLA_CHECK(c == 1 || c == 3 || c == 4, "encode_jpeg: expected 1, 3 or 4 channels, got shape ",
              image.shape());
  NABLA_CHECK(quality >= 1 && quality <= 100, "encode_jpeg: quality must be in 1..100, got ", quality);
  JpegDest dest;
  DecodeError error;
  bool ok = encode_jpeg_raw(x.data<uint8_t>(), x.size(0), x.size(1), c, quality, &dest, &error);
  std::vector<uint8_t> bytes;
  if (ok) bytes.assign(dest.buffer, dest.buffer + dest.size);
  std::free(dest.buffer);
  NABLA_CHECK(ok, "encode_jpeg: ", error.message);
  return bytes;
}

std::vector<uint8_t> encode_png(const Tensor& image, bool palette) {
  NABLA_CHECK(image.defined() && (image.dtype() == DType::u8 || image.dtype() == DType::i32),
              "encode_png: expected a u8 (8-bit) or i32 (16-bit) image");
  Tensor x = image.dim() == 2 ? image.unsqueeze(2).contiguous() : image.contiguous();
  NABLA_CHECK(x.dim() == 3 && x.size(0) > 0 && x.size(1) > 0 && x.size(2) >= 1 && x.size(2) <= 4,
              "encode_png: expected an image [H, W, C] with C in 1..4, got ", image.shape());
  int64_t h = x.size(0), w = x.size(1), c = x.size(2);
  static const int kColorTypes[] = {PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_COLOR_TYPE_RGB,
                                    PNG_COLOR_TYPE_RGB_ALPHA};
  int color_type = kColorTypes[c - 1];
  int bit_depth = 8;
  std::vector<uint8_t> rows;
  std::vector<png_color> colors;
  if (palette) {
    NABLA_CHECK(x.dtype() == DType::u8 && c == 3, "encode_png: a palette image needs u8 RGB, got ", x.dtype(),
                " ", image.shape());
    std::map<uint32_t, uint8_t> index;
    const uint8_t* p = x.data<uint8_t>();
    for (int64_t i = 0; i < h * w; ++i) {
      uint32_t key = uint32_t{p[3 * i]} << 16 | uint32_t{p[3 * i + 1]} << 8 | p[3 * i + 2];
      auto it = index.find(key);
      if (it == index.end()) {
        NABLA_CHECK(colors.size() < 256, "encode_png: a palette image may have at most 256 colours");
        it = index.emplace(key, static_cast<uint8_t>(colors.size())).first;
        colors.push_back({p[3 * i], p[3 * i + 1], p[3 * i + 2]});
      }
      rows.push_back(it->second);
    }
    color_type = PNG_COLOR_TYPE_PALETTE;
    c = 1;
  } else if (x.dtype() == DType::i32) {
    bit_depth = 16;
    for (int32_t v : std::vector<int32_t>(x.data<int32_t>(), x.data<int32_t>() + x.numel())) {
      NABLA_CHECK(v >= 0 && v <= 65535, "encode_png: 16-bit sample ", v, " is not in 0..65535");
      rows.push_back(static_cast<uint8_t>(v >> 8));
      rows.push_back(static_cast<uint8_t>(v));
    }
  } else {
    rows.assign(x.data<uint8_t>(), x.data<uint8_t>() + x.numel());
  }
  std::vector<uint8_t> bytes;
  DecodeError error;
  PngIo io{nullptr, 0, 0, &bytes, &error};
  size_t stride = static_cast<size_t>(w * c * (bit_depth / 8));
  NABLA_CHECK(encode_png_raw(&io, rows.data(), h, w, stride, color_type, bit_depth,
                             colors.empty() ? nullptr : colors.data(), static_cast<int>(colors.size())),
              "encode_png: ", error.message);
  return bytes;
}

void write_jpeg(const std::string& path, const Tensor& image, int quality) {
  write_file_bytes(path, encode_jpeg(image, quality));
}

void write_png(const std::string& path, const Tensor& image, bool palette) {
  write_file_bytes(path, encode_png(image, palette));
}

// ---- ImageFolder --------------------------------------------------------------------------------

namespace {

// One line for a filesystem error: a symlink loop gets its own words instead of the library's
// "filesystem error: ... Too many levels of symbolic links [path]".
std::string fs_error(const fs::path& p, const std::error_code& ec) {
  if (ec.value() == ELOOP)
    return str_cat(p.string(), ": is a symlink loop (too many levels of symbolic links)");
  return str_cat(p.string(), ": cannot list: ", ec.message());
}

// The image files under `dir`, recursively, following directory symlinks as torchvision does; a symlink
// that leads back to a folder already on the way down (a loop) is an error naming it.
void list_images(const fs::path& dir, std::vector<std::pair<uint64_t, uint64_t>>* ancestors,
                 std::vector<std::string>* files) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    std::error_code ec(errno, std::generic_category());
    fail("ImageFolder: ", fs_error(dir, ec));
  }
  const std::pair<uint64_t, uint64_t> id{st.st_dev, st.st_ino};
  for (const auto& a : *ancestors)
    NABLA_CHECK(a != id, "ImageFolder: ", dir.string(),
                ": is a symlink loop (it leads back to a folder above it); remove the link");
  ancestors->push_back(id);
  std::error_code ec;
  std::vector<fs::path> subdirs;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code sec;
    const fs::file_status status = it->status(sec);  // follows symlinks
    if (sec) {
      if (sec.value() == ELOOP) fail("ImageFolder: ", fs_error(it->path(), sec));
      continue;  // a dangling symlink: not an image
    }
    if (fs::is_directory(status))
      subdirs.push_back(it->path());
    else if (is_image_file(it->path()))
      files->push_back(it->path().string());
  }
  NABLA_CHECK(!ec, "ImageFolder: ", fs_error(dir, ec));
  for (const fs::path& sub : subdirs) list_images(sub, ancestors, files);
  ancestors->pop_back();
}

}  // namespace

ImageFolder::ImageFolder(const std::string& root, ImageMode mode) : ImageFolder(root, mode, {}) {}

ImageFolder::ImageFolder(const std::string& root, ImageMode mode, const std::vector<std::string>& classes)
    : root_(root), mode_(mode) {
  std::error_code ec;
  if (!fs::is_directory(root, ec)) {
    NABLA_CHECK(ec.value() != ELOOP, "ImageFolder: ", fs_error(root, ec));
    fail("ImageFolder: ", root, ": no such directory");
  }
  std::vector<std::string> found;
  for (fs::directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code sec;
    const fs::file_status status = it->status(sec);
    NABLA_CHECK(!sec || sec.value() != ELOOP, "ImageFolder: ", fs_error(it->path(), sec));
    if (!sec && fs::is_directory(status)) found.push_back(it->path().filename().string());
  }
  NABLA_CHECK(!ec, "ImageFolder: ", fs_error(root, ec));
  NABLA_CHECK(!found.empty(), "ImageFolder: ", root,
              " is empty: expected one sub-folder of images per class");
  std::sort(found.begin(), found.end());
  // Labels: the sorted folder names, or the positions in `classes` (the training set's), matched by name.
  classes_ = classes.empty() ? found : classes;
  std::map<std::string, int64_t> label_of;
  for (size_t i = 0; i < classes_.size(); ++i) label_of.emplace(classes_[i], static_cast<int64_t>(i));
  for (const std::string& name : found) {
    auto it = label_of.find(name);
    if (it == label_of.end()) {
      std::string have;
      for (size_t i = 0; i < classes_.size() && i < 10; ++i) have += (i ? ", " : "") + classes_[i];
      if (classes_.size() > 10) have += ", ...";
      fail("ImageFolder: ", root, ": class folder '", name, "' is not one of the ", classes_.size(),
           " training classes (", have, "); every class must also be in the training set");
    }
    fs::path dir = fs::path(root) / name;
    std::vector<std::string> files;
    std::vector<std::pair<uint64_t, uint64_t>> ancestors;
    list_images(dir, &ancestors, &files);
    NABLA_CHECK(!files.empty(), "ImageFolder: class folder ", dir.string(),
                " has no .jpg, .jpeg or .png files");
    std::sort(files.begin(), files.end());
    for (std::string& f : files) samples_.push_back({std::move(f), it->second});
  }
  std::stable_sort(samples_.begin(), samples_.end(),
                   [](const Sample& a, const Sample& b) { return a.label < b.label; });
}

Example ImageFolder::get(int64_t i) const {
  check_index(i, size(), "ImageFolder");
  const Sample& s = samples_[static_cast<size_t>(i)];
  return {read_image(s.path, mode_), s.label};
}

}  // namespace nabla::data
