// Darknet .cfg files: the text format that describes a network, as Darknet's read_cfg reads it.
//
//   [net]                 a section: a layer type in brackets (aliases as Darknet: [conv], [max], ...)
//   width=416             options: key=value, one a line; whitespace anywhere is dropped (Darknet's strip)
//   # comment, ; comment  whole-line comments; a '#' after a value starts a comment too
//
// Parsing keeps every option with its line number. Typed getters convert a value and throw nabla::Error
// naming the file, line, section and key ("yolov3.cfg:25: [convolutional] filters: expected an integer,
// got 'x'"); each getter marks the option used, so a builder can list the options it never read (Darknet
// prints those as "Unused field").
#pragma once
#include <optional>
#include <string>
#include <vector>

namespace nabla::models::darknet {

struct CfgOption {
  std::string key, value;
  int line = 0;
  mutable bool used = false;
};

struct CfgSection {
  std::string type;  // as written, without brackets: "convolutional", "conv", "net", ...
  int line = 0;      // line of the [type] header
  std::string file;  // for error messages
  std::vector<CfgOption> options;

  const CfgOption* find(const std::string& key) const;  // marks it used
  bool has(const std::string& key) const { return find(key) != nullptr; }
  // "file:line: [type] key: " for error messages about `key` (the section's line when key is absent).
  std::string where(const std::string& key = "") const;

  int get_int(const std::string& key, std::optional<int> fallback = std::nullopt) const;
  float get_float(const std::string& key, std::optional<float> fallback = std::nullopt) const;
  std::string get_string(const std::string& key, std::optional<std::string> fallback = std::nullopt) const;
  std::vector<int> get_ints(const std::string& key, std::vector<int> fallback = {}) const;
  std::vector<float> get_floats(const std::string& key, std::vector<float> fallback = {}) const;
  // Options no getter has read, as "file:line: [type] key".
  std::vector<std::string> unused() const;
};

struct Cfg {
  std::string path;
  std::vector<CfgSection> sections;
};

// Reads and parses a file (errors name the path).
Cfg read_cfg(const std::string& path);
// Parses text; `name` labels errors.
Cfg parse_cfg(const std::string& text, const std::string& name);
// Writes sections back as text (one blank line between sections), e.g. after model surgery.
std::string format_cfg(const Cfg& cfg);
// Sets [net] width / height (when > 0), and (classes > 0) every [yolo] layer's classes and the filters of the
// [convolutional] right before it to len(mask) x (5 + classes); throws when a [yolo] has no mask or no conv
// before it. train_yolo's and prune_abcp's --width / --height / --classes.
void override_cfg(Cfg& cfg, int width, int height, int classes);

}  // namespace nabla::models::darknet
