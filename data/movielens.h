// MovieLens 100K (GroupLens; ../shared/data/movielens-100k) and ml-latest-small for recommendation: the
// readers, the behaviour model that HKF's templates use, and the splits (docs/hkf.md).
//
// Files (Latin-1 text):
//   u.data   user \t item \t rating \t unix time        100,000 rows; ids start at 1, rating 1..5
//   u.user   user|age|gender|occupation|zip             943 rows, ids 1..N in order
//   u.item   item|title|release date|video date|IMDb url|19 genre flags (0/1)   1,682 rows, ids 1..M in order
//   u.genre  name|index                                  19 rows (optional: the standard names otherwise)
// A malformed row throws "movielens: FILE:LINE: what was expected, what came". Ids are kept as in the files
// (1-based); vectors are indexed by id (index 0 unused).
//
// ml-latest-small (GroupLens 2016; scripts/movielens_latest_small.py writes it from Debian's r-cran-dslabs):
// RFC 4180 CSV (UTF-8, a header row, LF or CRLF; a field in double quotes may hold commas, newlines and ""
// for a quote):
//   ratings.csv  userId,movieId,rating,timestamp      rating 0.5..5 in steps of 0.5
//   movies.csv   movieId,title,genres                 title "Name (YYYY)", genres "A|B|..."
// Mapped onto the same MovieLens struct: items renumbered 1..M in movies.csv order (Movie::source_id keeps
// movieId); users 1..the largest userId, with no demographics (age 0, empty gender and occupation); a
// rating's stars kept in Rating::half_stars (1..10) and rounded up to Rating::rating 1..5 (3.5 -> 4: an
// "order" of the behaviour model); genre names onto the 19 of u.item ("Children" -> "Children's",
// "(no genres listed)" -> unknown; "IMAX", a format rather than a genre, is dropped and counted).
//
// Behaviour model (the paper's heterogeneous axes mapped onto what the data holds):
//   content (action)  every rating is an exposure; rating >= 3 a click; rating >= 4 an order. The three are
//                     nested (an order is also a click and an exposure); each event is rendered once, as its
//                     strongest kind (behaviour_of).
//   subject           the movie, and its genres (a second subject type, as the paper's merchant / product).
//   scenario          the time period: "recent" = the last 30 days before the user's cut-off, "earlier"
//                     before that (scenario_of).
//
// Splits:
//   leave_last_out  per user, events sorted by (time, item); the last one is the test interaction. Events
//                   with the test's timestamp besides it are dropped from training, so that the test
//                   interaction is strictly later than every training one (no leakage across the cut).
//                   Users left with fewer than min_train training events are left out (counted).
//   make_cold_start a seeded fraction of the users keeps only its `keep` most recent training events: the
//                   cold-start users (MovieLens 100K has >= 20 ratings per user, so cold start is simulated).
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace nabla::data::movielens {

constexpr int kNumGenres = 19;  // u.item's flags, "unknown" first

struct Rating {
  int32_t user = 0, item = 0, rating = 0;
  int64_t time = 0;        // unix seconds
  int32_t half_stars = 0;  // the rating in half stars (1..10): 2 x rating for 100K
};

struct User {
  int32_t id = 0, age = 0;
  std::string gender, occupation, zip;
};

struct Movie {
  int32_t id = 0;
  std::string title;        // "Toy Story (1995)"
  int32_t year = 0;         // release year (the release date's, else the title's "(YYYY)"; 0: unknown)
  std::vector<int> genres;  // genre indices with flag 1, ascending
  int32_t source_id = 0;    // the file's movieId (ml-latest-small renumbers items; 100K: == id)
};

struct MovieLens {
  std::vector<Rating> ratings;
  std::vector<User> users;               // [0] unused; users[u].id == u
  std::vector<Movie> movies;             // [0] unused
  std::vector<std::string> genre_names;  // kNumGenres
  std::vector<std::string> occupations;  // distinct occupations, sorted (categorical ids)
  int32_t num_users() const { return static_cast<int32_t>(users.size()) - 1; }
  int32_t num_items() const { return static_cast<int32_t>(movies.size()) - 1; }
};

// The standard genre names of u.genre.
const std::array<const char*, kNumGenres>& default_genre_names();

// Reads dir/u.data, dir/u.user, dir/u.item (and dir/u.genre when present). Checks that every rating's
// user and item exist.
MovieLens read_100k(const std::string& dir);
// The parsers alone (for tests): `name` is the file name used in errors.
std::vector<Rating> parse_ratings(const std::string& text, const std::string& name);
std::vector<User> parse_users(const std::string& text, const std::string& name);
std::vector<Movie> parse_items(const std::string& text, const std::string& name);

// ---- ml-latest-small ----
// One CSV record: its fields and the line it starts on (1-based).
struct CsvRecord {
  int64_t line = 0;
  std::vector<std::string> fields;
};
// RFC 4180 records of `text` (empty lines skipped); `name` is the file name used in errors (an unterminated
// quote, a quote inside an unquoted field, text after a closing quote).
std::vector<CsvRecord> parse_csv(const std::string& text, const std::string& name);

struct LatestSmallMovies {
  std::vector<Movie> movies;  // [0] unused; ids 1..M in file order, source_id = movieId
  int64_t imax_dropped = 0;   // "IMAX" genre entries dropped
};
// The two files' parsers (header row required). parse_latest_ratings leaves item = movieId (the source id);
// read_latest_small renumbers.
std::vector<Rating> parse_latest_ratings(const std::string& text, const std::string& name);
LatestSmallMovies parse_latest_movies(const std::string& text, const std::string& name);
// Reads dir/ratings.csv and dir/movies.csv; every rating's movieId must be in movies.csv.
MovieLens read_latest_small(const std::string& dir);
// read_100k when dir/u.data exists, read_latest_small when dir/ratings.csv does; otherwise an error naming
// both.
MovieLens read_dataset(const std::string& dir);

// ---- behaviour model ----
enum class Behaviour { exposure = 0, click = 1, order = 2 };
constexpr int kNumBehaviours = 3;
const char* behaviour_name(Behaviour b);  // "exposure", "click", "order"
// The strongest kind of a rating: order (>= 4), click (3), exposure (1, 2).
Behaviour behaviour_of(int32_t rating);
enum class Scenario { earlier = 0, recent = 1 };
constexpr int64_t kRecentSeconds = 30 * 86400;
Scenario scenario_of(int64_t time, int64_t cutoff_time);
const char* scenario_name(Scenario s);  // "earlier", "recent"

// ---- splits ----
struct UserSplit {
  int32_t user = 0;
  std::vector<Rating> train;  // sorted by (time, item)
  Rating test;
  bool cold = false;  // truncated by make_cold_start
};

struct Split {
  std::vector<UserSplit> users;  // ascending user id
  int64_t dropped_ties = 0;      // training events of kept users dropped for sharing the test's timestamp
  int64_t dropped_users = 0;     // users with fewer than min_train training events
};

Split leave_last_out(const MovieLens& ml, int64_t min_train = 1);
// Marks round(fraction * users) users, drawn with `seed`, as cold and keeps their `keep` most recent
// training events. fraction in [0, 1], keep >= 1.
void make_cold_start(Split& split, double fraction, int64_t keep, uint64_t seed);

// Ratings per item over the training events of the split ([0] unused): the popularity baseline's scores.
std::vector<int64_t> train_item_counts(const Split& split, int32_t num_items);

}  // namespace nabla::data::movielens
