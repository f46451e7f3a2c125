#include "models/wordpiece.hpp"

#include "models/files.hpp"
#include "models/errors.hpp"

#include <utf8proc.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <queue>
#include <set>
#include <stdexcept>
#include <utility>

namespace floe::models {

namespace {

using CodePoints = std::vector<int32_t>;

// Strict UTF-8 (no overlong forms, surrogates or code points past U+10FFFF). An invalid byte is
// skipped alone, which drops exactly the bytes Python's decode(errors="ignore") drops: the
// bytes of a broken sequence are lead and continuation bytes, and no valid sequence starts with
// a continuation byte.
CodePoints decode_utf8(const std::string& s, bool* all_valid = nullptr) {
  CodePoints out;
  out.reserve(s.size());
  if (all_valid) *all_valid = true;
  size_t i = 0;
  const size_t n = s.size();
  while (i < n) {
    const auto b = static_cast<unsigned char>(s[i]);
    if (b < 0x80) {
      out.push_back(b);
      ++i;
      continue;
    }
    size_t len = 0;
    int32_t cp = 0;
    if (b >= 0xC2 && b <= 0xDF) {
      len = 2, cp = b & 0x1F;
    } else if (b >= 0xE0 && b <= 0xEF) {
      len = 3, cp = b & 0x0F;
    } else if (b >= 0xF0 && b <= 0xF4) {
      len = 4, cp = b & 0x07;
    }
    bool ok = len != 0 && i + len <= n;
    for (size_t k = 1; ok && k < len; ++k) {
      const auto c = static_cast<unsigned char>(s[i + k]);
      ok = (c & 0xC0) == 0x80;
      cp = (cp << 6) | (c & 0x3F);
    }
    ok = ok && !(len == 3 && cp < 0x800) && !(len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) &&
         !(cp >= 0xD800 && cp <= 0xDFFF);
    if (ok) {
      out.push_back(cp);
      i += len;
    } else {
      if (all_valid) *all_valid = false;
      ++i;
    }
  }
  return out;
}

void append_utf8(std::string& out, int32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

std::string encode_utf8(const CodePoints& cps) {
  std::string out;
  out.reserve(cps.size());
  for (int32_t cp : cps) append_utf8(out, cp);
  return out;
}

utf8proc_category_t category(int32_t cp) { return utf8proc_category(cp); }

bool is_whitespace(int32_t cp) {
  if (cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r') return true;
  const auto c = category(cp);
  return c == UTF8PROC_CATEGORY_ZS || c == UTF8PROC_CATEGORY_ZL || c == UTF8PROC_CATEGORY_ZP;
}

bool is_control(int32_t cp) {
  if (cp == '\t' || cp == '\n' || cp == '\r') return false;
  switch (category(cp)) {
    case UTF8PROC_CATEGORY_CC: case UTF8PROC_CATEGORY_CF: case UTF8PROC_CATEGORY_CS:
    case UTF8PROC_CATEGORY_CO: case UTF8PROC_CATEGORY_CN:
      return true;
    default:
      return false;
  }
}

bool is_punctuation(int32_t cp) {
  if ((cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) ||
      (cp >= 123 && cp <= 126))
    return true;
  const auto c = category(cp);
  return c >= UTF8PROC_CATEGORY_PC && c <= UTF8PROC_CATEGORY_PO;
}

// tokenization.py's _is_chinese_char: the CJK Unified Ideographs blocks, not all of CJK.
bool is_cjk_ideograph(int32_t cp) {
  return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
         (cp >= 0x20000 && cp <= 0x2A6DF) || (cp >= 0x2A700 && cp <= 0x2B73F) ||
         (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B820 && cp <= 0x2CEAF) ||
         (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

// Unicode's Cased and Case_Ignorable properties, as far as the final-sigma rule needs them:
// utf8proc has no property table for them, so cased is "a letter with case, a character with a
// case mapping, or one of the Other_Lowercase/Other_Uppercase characters without either that
// are not case-ignorable anyway (ª º, the enclosed capital letters)", and case-ignorable the
// categories plus the Word_Break MidLetter, MidNumLet and Single_Quote characters that the
// definition names.
bool is_cased(int32_t cp) {
  const auto c = category(cp);
  return c == UTF8PROC_CATEGORY_LU || c == UTF8PROC_CATEGORY_LL || c == UTF8PROC_CATEGORY_LT ||
         utf8proc_tolower(cp) != cp || utf8proc_toupper(cp) != cp || cp == 0xAA || cp == 0xBA ||
         (cp >= 0x1F130 && cp <= 0x1F149) || (cp >= 0x1F150 && cp <= 0x1F169) ||
         (cp >= 0x1F170 && cp <= 0x1F189);
}

bool is_case_ignorable(int32_t cp) {
  switch (category(cp)) {
    case UTF8PROC_CATEGORY_MN: case UTF8PROC_CATEGORY_ME: case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_SK:
      return true;
    default:
      break;
  }
  static constexpr int32_t mid[] = {0x27,   0x2E,   0x3A,   0xB7,   0x387,  0x55F,
                                    0x5F4,  0x2018, 0x2019, 0x2024, 0x2027, 0xFE13,
                                    0xFE52, 0xFE55, 0xFF07, 0xFF0E, 0xFF1A};
  return std::find(std::begin(mid), std::end(mid), cp) != std::end(mid);
}

// Python's str.lower(): Σ is ς at the end of a word (after a cased letter, not before one,
// case-ignorable characters skipped), σ elsewhere. İ lowers to i + U+0307 in Python but to i
// here; the accent stripping that always follows makes both "i".
CodePoints lower(const CodePoints& word) {
  CodePoints out(word.size());
  for (size_t i = 0; i < word.size(); ++i) {
    if (word[i] != 0x3A3) {
      out[i] = utf8proc_tolower(word[i]);
      continue;
    }
    size_t j = i;
    while (j > 0 && is_case_ignorable(word[j - 1])) --j;
    bool final_sigma = j > 0 && is_cased(word[j - 1]);
    if (final_sigma) {
      size_t k = i + 1;
      while (k < word.size() && is_case_ignorable(word[k])) ++k;
      final_sigma = k == word.size() || !is_cased(word[k]);
    }
    out[i] = final_sigma ? 0x3C2 : 0x3C3;
  }
  return out;
}

// NFD (canonical decomposition, then canonical ordering of combining marks), then the
// nonspacing marks (Mn) dropped: tokenization.py's _run_strip_accents.
CodePoints strip_accents(const CodePoints& word) {
  CodePoints nfd;
  nfd.reserve(word.size() * 2);
  int32_t buf[16];
  for (int32_t cp : word) {
    int boundclass = 0;
    const auto n = utf8proc_decompose_char(cp, buf, 16, UTF8PROC_DECOMPOSE, &boundclass);
    if (n < 0 || n > 16) {  // not for a valid code point (decompositions are at most 4 long)
      nfd.push_back(cp);
      continue;
    }
    nfd.insert(nfd.end(), buf, buf + n);
  }
  auto ccc = [](int32_t cp) { return utf8proc_get_property(cp)->combining_class; };
  for (size_t i = 0; i < nfd.size();) {
    if (ccc(nfd[i]) == 0) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < nfd.size() && ccc(nfd[j]) != 0) ++j;
    std::stable_sort(nfd.begin() + i, nfd.begin() + j,
                     [&](int32_t a, int32_t b) { return ccc(a) < ccc(b); });
    i = j;
  }
  CodePoints out;
  out.reserve(nfd.size());
  for (int32_t cp : nfd)
    if (category(cp) != UTF8PROC_CATEGORY_MN) out.push_back(cp);
  return out;
}

const char* const kSpecials[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};

// The whole file; throws InputError "cannot read WHAT PATH: reason".
std::string read_file(const std::string& path, const std::string& what) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) throw InputError("cannot read " + what + " " + path + ": " + std::strerror(errno));
  std::string data;
  char buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) data.append(buf, n);
  const bool failed = std::ferror(f);
  const int err = errno;
  std::fclose(f);
  if (failed) throw InputError("cannot read " + what + " " + path + ": " + std::strerror(err));
  return data;
}

using WordCounts = std::unordered_map<std::string, int64_t>;

void count_words(const std::string& line, bool lower_case, WordCounts& counts) {
  for (auto& w : basic_tokenize(line, lower_case)) ++counts[std::move(w)];
}

void check_options(const VocabOptions& o) {
  if (o.size < 5)
    throw InputError("vocabulary size " + std::to_string(o.size) +
                     ": expected at least 5 (the special tokens [PAD] [UNK] [CLS] [SEP] [MASK])");
  if (o.min_frequency < 1)
    throw InputError("vocabulary min_frequency " + std::to_string(o.min_frequency) +
                     ": expected at least 1");
}

uint64_t pair_key(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}
int32_t pair_left(uint64_t key) { return static_cast<int32_t>(key >> 32); }
int32_t pair_right(uint64_t key) { return static_cast<int32_t>(key & 0xFFFFFFFFu); }

// The BPE merge loop of the header's comment, over the counted words.
Vocab vocab_from_word_counts(const WordCounts& counts, const VocabOptions& options) {
  std::vector<std::pair<std::string, int64_t>> sorted_words;
  for (const auto& [word, n] : counts) {
    const CodePoints cps = decode_utf8(word);
    if (!cps.empty() && cps.size() <= WordPiece::max_word_chars) sorted_words.emplace_back(word, n);
  }
  std::sort(sorted_words.begin(), sorted_words.end());

  std::vector<std::string> tokens(std::begin(kSpecials), std::end(kSpecials));
  std::unordered_map<std::string, int32_t> token_ids;
  for (size_t i = 0; i < tokens.size(); ++i) token_ids[tokens[i]] = static_cast<int32_t>(i);
  std::set<std::string> initial, continuation;  // byte order
  std::vector<std::vector<std::string>> word_chars;
  for (const auto& [word, n] : sorted_words) {
    std::vector<std::string> chars;
    for (int32_t cp : decode_utf8(word)) {
      std::string c;
      append_utf8(c, cp);
      initial.insert(c);
      if (!chars.empty()) continuation.insert("##" + c);
      chars.push_back(chars.empty() ? c : "##" + c);
    }
    word_chars.push_back(std::move(chars));
  }
  auto add_token = [&](const std::string& t) {
    auto [it, added] = token_ids.emplace(t, static_cast<int32_t>(tokens.size()));
    if (added) tokens.push_back(t);
    return it->second;
  };
  for (const auto& c : initial) add_token(c);
  for (const auto& c : continuation) add_token(c);

  struct Word {
    std::vector<int32_t> symbols;
    int64_t frequency;
  };
  std::vector<Word> words;
  words.reserve(sorted_words.size());
  for (size_t w = 0; w < sorted_words.size(); ++w) {
    Word word{{}, sorted_words[w].second};
    for (const auto& c : word_chars[w]) word.symbols.push_back(token_ids.at(c));
    words.push_back(std::move(word));
  }

  std::unordered_map<uint64_t, int64_t> pair_count;
  std::unordered_map<uint64_t, std::vector<int32_t>> words_with;  // may name a word no longer
                                                                  // holding the pair
  for (size_t w = 0; w < words.size(); ++w) {
    const auto& s = words[w].symbols;
    for (size_t i = 0; i + 1 < s.size(); ++i) {
      const uint64_t key = pair_key(s[i], s[i + 1]);
      pair_count[key] += words[w].frequency;
      auto& list = words_with[key];
      if (list.empty() || list.back() != static_cast<int32_t>(w)) list.push_back(static_cast<int32_t>(w));
    }
  }

  // A max-heap of (count, pair) with lazy deletion: an entry whose count is no longer the
  // pair's count is stale; every change of a count pushes a fresh entry.
  struct Entry {
    int64_t count;
    uint64_t key;
  };
  auto after = [&tokens](const Entry& x, const Entry& y) {  // x pops after y
    if (x.count != y.count) return x.count < y.count;
    const std::string& xl = tokens[pair_left(x.key)];
    const std::string& yl = tokens[pair_left(y.key)];
    if (xl != yl) return xl > yl;
    return tokens[pair_right(x.key)] > tokens[pair_right(y.key)];
  };
  std::priority_queue<Entry, std::vector<Entry>, decltype(after)> heap(after);
  for (const auto& [key, n] : pair_count) heap.push({n, key});

  const auto target = static_cast<size_t>(options.size);
  std::unordered_map<uint64_t, int64_t> delta;
  std::vector<uint64_t> old_pairs;
  std::vector<int32_t> merged;
  while (tokens.size() < target && !heap.empty()) {
    const Entry top = heap.top();
    heap.pop();
    const auto found = pair_count.find(top.key);
    if (found == pair_count.end() || found->second != top.count) continue;  // stale
    if (top.count < options.min_frequency) break;
    const int32_t a = pair_left(top.key), b = pair_right(top.key);
    const int32_t ab = add_token(tokens[a] + tokens[b].substr(2));  // b is a "##" piece

    std::vector<int32_t> touched = std::move(words_with[top.key]);
    words_with.erase(top.key);
    delta.clear();
    for (int32_t w : touched) {
      auto& s = words[w].symbols;
      merged.clear();
      for (size_t i = 0; i < s.size(); ++i) {
        if (i + 1 < s.size() && s[i] == a && s[i + 1] == b) {
          merged.push_back(ab);
          ++i;
        } else {
          merged.push_back(s[i]);
        }
      }
      if (merged.size() == s.size()) continue;  // a stale entry of words_with
      const int64_t f = words[w].frequency;
      old_pairs.clear();
      for (size_t i = 0; i + 1 < s.size(); ++i) {
        old_pairs.push_back(pair_key(s[i], s[i + 1]));
        delta[old_pairs.back()] -= f;
      }
      for (size_t i = 0; i + 1 < merged.size(); ++i) {
        const uint64_t key = pair_key(merged[i], merged[i + 1]);
        delta[key] += f;
        if (std::find(old_pairs.begin(), old_pairs.end(), key) == old_pairs.end()) {
          auto& list = words_with[key];
          if (list.empty() || list.back() != w) list.push_back(w);
        }
      }
      s.swap(merged);
    }
    for (const auto& [key, d] : delta) {
      if (d == 0) continue;
      auto it = pair_count.find(key);
      const int64_t now = (it == pair_count.end() ? 0 : it->second) + d;
      if (now <= 0) {
        if (it != pair_count.end()) pair_count.erase(it);
        words_with.erase(key);
      } else {
        pair_count[key] = now;
        heap.push({now, key});
      }
    }
  }
  return vocab_from_tokens(std::move(tokens), "build_vocab");
}

}  // namespace

int64_t Vocab::id(const std::string& token) const {
  const auto it = ids.find(token);
  return it == ids.end() ? unk : it->second;
}

Vocab vocab_from_tokens(std::vector<std::string> tokens, const std::string& where) {
  if (tokens.empty()) throw InputError(where + ": empty vocabulary, expected one token per line");
  Vocab v;
  v.ids.reserve(tokens.size());
  for (size_t i = 0; i < tokens.size(); ++i) {
    const std::string& t = tokens[i];
    const std::string at = where + ":" + std::to_string(i + 1) + ": ";
    if (t.empty()) throw InputError(at + "empty token (expected one token per line)");
    if (t.find_first_of("\r\n") != std::string::npos)
      throw InputError(at + "token with a line break");
    bool valid = true;
    decode_utf8(t, &valid);
    if (!valid) throw InputError(at + "token is not valid UTF-8");
    const auto [it, added] = v.ids.emplace(t, static_cast<int64_t>(i));
    if (!added)
      throw InputError(at + "duplicate token \"" + t + "\" (also on line " +
                       std::to_string(it->second + 1) + ")");
  }
  int64_t* special_ids[] = {&v.pad, &v.unk, &v.cls, &v.sep, &v.mask};
  for (size_t k = 0; k < 5; ++k) {
    const auto it = v.ids.find(kSpecials[k]);
    if (it == v.ids.end())
      throw InputError(where + ": no " + kSpecials[k] +
                       " token (a BERT vocabulary lists [PAD], [UNK], [CLS], [SEP] and [MASK])");
    *special_ids[k] = it->second;
  }
  v.tokens = std::move(tokens);
  return v;
}

Vocab read_vocab(const std::string& path) {
  std::string data = read_file(path, "vocab file");
  if (data.compare(0, 3, "\xEF\xBB\xBF") == 0) data.erase(0, 3);
  if (data.empty()) throw InputError(path + ": empty file, expected one token per line");
  std::vector<std::string> tokens;
  size_t start = 0;
  while (start < data.size()) {
    size_t end = data.find('\n', start);
    if (end == std::string::npos) end = data.size();
    std::string line = data.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    tokens.push_back(std::move(line));
    start = end + 1;
  }
  return vocab_from_tokens(std::move(tokens), path);
}

void write_vocab(const Vocab& vocab, const std::string& path) {
  std::string text;
  for (size_t i = 0; i < vocab.tokens.size(); ++i) {
    const std::string& t = vocab.tokens[i];
    if (t.empty() || t.find_first_of("\r\n") != std::string::npos)
      throw InputError("cannot write " + path + ": token " + std::to_string(i) +
                       " is empty or holds a line break");
    text += t;
    text += '\n';
  }
  floe::write_file_atomic(path, text);
}

std::vector<std::string> basic_tokenize(const std::string& text, bool lower_case) {
  CodePoints cleaned;
  for (int32_t cp : decode_utf8(text)) {
    if (cp == 0 || cp == 0xFFFD || is_control(cp)) continue;
    if (is_whitespace(cp)) {
      cleaned.push_back(' ');
    } else if (is_cjk_ideograph(cp)) {
      cleaned.push_back(' ');
      cleaned.push_back(cp);
      cleaned.push_back(' ');
    } else {
      cleaned.push_back(cp);
    }
  }
  std::vector<std::string> out;
  CodePoints word, piece;
  auto flush = [&](CodePoints& cps) {
    if (!cps.empty()) out.push_back(encode_utf8(cps));
    cps.clear();
  };
  for (size_t i = 0; i <= cleaned.size(); ++i) {
    if (i < cleaned.size() && cleaned[i] != ' ') {
      word.push_back(cleaned[i]);
      continue;
    }
    if (word.empty()) continue;
    if (lower_case) word = strip_accents(lower(word));
    for (int32_t cp : word) {
      if (is_punctuation(cp)) {
        flush(piece);
        piece.push_back(cp);
        flush(piece);
      } else {
        piece.push_back(cp);
      }
    }
    flush(piece);
    word.clear();
  }
  return out;
}

WordPiece::WordPiece(Vocab vocab, bool lower_case)
    : vocab_(std::move(vocab)), lower_case_(lower_case) {
  const auto n = static_cast<int64_t>(vocab_.tokens.size());
  for (int64_t id : {vocab_.unk, vocab_.cls, vocab_.sep})
    if (id < 0 || id >= n)
      throw std::invalid_argument("WordPiece: the vocabulary lacks the ids of [UNK], [CLS] or [SEP]");
}

std::vector<std::string> WordPiece::split_word(const std::string& word) const {
  std::vector<size_t> offsets;  // byte offset of each code point, then the end
  for (size_t i = 0; i < word.size(); ++i)
    if ((static_cast<unsigned char>(word[i]) & 0xC0) != 0x80) offsets.push_back(i);
  const size_t chars = offsets.size();
  offsets.push_back(word.size());
  const std::string& unk = vocab_.tokens[static_cast<size_t>(vocab_.unk)];
  if (chars > max_word_chars) return {unk};
  std::vector<std::string> pieces;
  std::string candidate;
  size_t start = 0;
  while (start < chars) {
    size_t end = chars;
    for (; end > start; --end) {
      candidate = start > 0 ? "##" : "";
      candidate.append(word, offsets[start], offsets[end] - offsets[start]);
      if (vocab_.ids.count(candidate)) break;
    }
    if (end == start) return {unk};
    pieces.push_back(candidate);
    start = end;
  }
  return pieces;
}

std::vector<std::string> WordPiece::tokenize(const std::string& text) const {
  std::vector<std::string> pieces;
  for (const auto& word : basic_tokenize(text, lower_case_))
    for (auto& p : split_word(word)) pieces.push_back(std::move(p));
  return pieces;
}

std::vector<int64_t> WordPiece::encode(const std::string& text, int64_t max_len) const {
  if (max_len < 2)
    throw InputError("max_len " + std::to_string(max_len) +
                     ": expected at least 2 (room for [CLS] and [SEP])");
  std::vector<std::string> pieces = tokenize(text);
  const auto room = static_cast<size_t>(max_len - 2);
  if (pieces.size() > room) pieces.resize(room);
  std::vector<int64_t> ids;
  ids.reserve(pieces.size() + 2);
  ids.push_back(vocab_.cls);
  for (const auto& p : pieces) ids.push_back(vocab_.ids.at(p));
  ids.push_back(vocab_.sep);
  return ids;
}

Vocab build_vocab(const std::vector<std::string>& corpus_lines, const VocabOptions& options) {
  check_options(options);
  WordCounts counts;
  for (const auto& line : corpus_lines) count_words(line, options.lower_case, counts);
  if (counts.empty())
    throw InputError("build_vocab: the corpus (" + std::to_string(corpus_lines.size()) +
                     " lines) holds no word");
  return vocab_from_word_counts(counts, options);
}

Vocab build_vocab_from_files(const std::vector<std::string>& paths, const VocabOptions& options) {
  check_options(options);
  WordCounts counts;
  std::string names;
  for (const auto& path : paths) {
    const std::string data = read_file(path, "corpus file");
    for (size_t start = 0; start < data.size();) {
      size_t end = data.find('\n', start);
      if (end == std::string::npos) end = data.size();
      count_words(data.substr(start, end - start), options.lower_case, counts);
      start = end + 1;
    }
    names += (names.empty() ? "" : ", ") + path;
  }
  if (counts.empty())
    throw InputError("corpus " + (names.empty() ? std::string("(no files)") : names) +
                     ": no word to build a vocabulary from");
  return vocab_from_word_counts(counts, options);
}

}  // namespace floe::models
