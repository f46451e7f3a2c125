#include "models/sst.hpp"

#include "models/errors.hpp"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string_view>
#include <unordered_map>

namespace floe::models {

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError("cannot open SST tree file '" + path + "': " + std::strerror(errno));
  std::ostringstream buf;
  buf << in.rdbuf();
  if (in.bad()) throw InputError("cannot read SST tree file '" + path + "'");
  return buf.str();
}

std::string decode_word(std::string_view w) {
  if (w == "-LRB-") return "(";
  if (w == "-RRB-") return ")";
  if (w == "-LSB-") return "[";
  if (w == "-RSB-") return "]";
  if (w == "-LCB-") return "{";
  if (w == "-RCB-") return "}";
  std::string out;
  out.reserve(w.size());
  for (size_t i = 0; i < w.size(); ++i) {
    if (w[i] == '\\' && i + 1 < w.size() && (w[i + 1] == '/' || w[i + 1] == '*')) ++i;
    out += w[i];
  }
  return out;
}

bool is_space(char c) { return c == ' ' || c == '\t'; }
bool is_delimiter(char c) { return is_space(c) || c == '(' || c == ')'; }

// Parses one non-blank line. Nodes are kept on an explicit stack, so a deeply nested (or
// hostile) line cannot overflow the call stack.
class LineParser {
 public:
  LineParser(std::string_view line, const std::string& name, size_t line_no)
      : line_(line), name_(name), line_no_(line_no) {}

  SstSentence parse() {
    skip_spaces();
    if (at_end() || peek() != '(')
      fail(pos_, "expected '(' to open a tree, found " + describe_here());
    open_node();
    while (!stack_.empty()) {
      skip_spaces();
      if (at_end()) {
        fail(pos_, "unbalanced parentheses: expected ')' to close the '(' at column " +
                       std::to_string(stack_.back().open_pos + 1) + ", found the end of the line");
      }
      const char c = peek();
      Open& top = stack_.back();
      if (c == '(') {
        if (top.has_word)
          fail(pos_, "expected ')' after the word of this node (a node holds one word or "
                     "subtrees, not both), found '('");
        top.has_subtree = true;
        open_node();
      } else if (c == ')') {
        if (!top.has_word && !top.has_subtree)
          fail(pos_, "empty tree: expected a word or a subtree after the label, found ')'");
        close_node();
      } else {
        if (top.has_subtree)
          fail(pos_, "expected '(' or ')' after a subtree (a node holds one word or subtrees, "
                     "not both), found the word '" + std::string(word_here()) + "'");
        if (top.has_word)
          fail(pos_, "expected ')' after the word of this node (a leaf holds one word), found "
                     "the word '" + std::string(word_here()) + "'");
        read_word();
        top.has_word = true;
      }
    }
    skip_spaces();
    if (!at_end()) {
      if (peek() == ')')
        fail(pos_, "unbalanced parentheses: ')' with no '(' to close");
      fail(pos_, "expected the end of the line after the tree's closing ')', found " +
                     describe_here());
    }
    SstSentence s;
    s.fine_label = phrases_.front().fine_label;
    s.text = std::move(text_);
    s.phrases = std::move(phrases_);
    return s;
  }

 private:
  struct Open {
    size_t open_pos;     // byte offset of its '('
    size_t phrase;       // its index in phrases_
    size_t first_token;  // index of the first token it will span
    bool has_word = false;
    bool has_subtree = false;
  };

  bool at_end() const { return pos_ >= line_.size(); }
  char peek() const { return line_[pos_]; }
  void skip_spaces() {
    while (!at_end() && is_space(peek())) ++pos_;
  }
  std::string_view word_here() const {
    size_t end = pos_;
    while (end < line_.size() && !is_delimiter(line_[end])) ++end;
    return line_.substr(pos_, end - pos_);
  }
  std::string describe_here() const {
    if (at_end()) return "the end of the line";
    if (peek() == '(' || peek() == ')') return std::string("'") + peek() + "'";
    return "'" + std::string(word_here()) + "'";
  }

  [[noreturn]] void fail(size_t pos, const std::string& what) const {
    throw InputError(name_ + ":" + std::to_string(line_no_) + ":" + std::to_string(pos + 1) +
                     ": " + what);
  }

  // At '(': consumes it and the label, and starts the node's phrase (pre-order).
  void open_node() {
    const size_t open_pos = pos_++;
    skip_spaces();
    const size_t label_pos = pos_;
    if (at_end()) fail(pos_, "unbalanced parentheses: expected a label 0-4 after '(', found "
                             "the end of the line");
    if (peek() == ')') fail(pos_, "empty tree: expected a label 0-4 after '(', found ')'");
    if (peek() == '(') fail(pos_, "missing label: expected a label 0-4 after '(', found '('");
    const std::string_view label = word_here();
    // An integer ("7", "-1", "12") is a label out of range; anything else is a missing label.
    const size_t sign = label.size() > 1 && label[0] == '-' ? 1 : 0;
    bool integer = label.size() > sign;
    for (size_t i = sign; i < label.size(); ++i)
      integer = integer && label[i] >= '0' && label[i] <= '9';
    if (!integer)
      fail(label_pos, "missing label: expected a label 0-4 after '(', found '" +
                          std::string(label) + "'");
    if (sign || label.size() > 1 || label[0] > '4')
      fail(label_pos, "label " + std::string(label) + " outside 0..4");
    const int value = label[0] - '0';
    pos_ += label.size();
    stack_.push_back(Open{open_pos, phrases_.size(), token_begin_.size()});
    phrases_.push_back(SstPhrase{std::string(), value});
  }

  void read_word() {
    const std::string_view raw = word_here();
    pos_ += raw.size();
    if (!text_.empty()) text_ += ' ';
    token_begin_.push_back(text_.size());
    text_ += decode_word(raw);
    token_end_.push_back(text_.size());
  }

  // At ')': consumes it; the node's text is the span of its tokens in the sentence text.
  void close_node() {
    ++pos_;
    const Open node = stack_.back();
    stack_.pop_back();
    const size_t begin = token_begin_[node.first_token];
    const size_t end = token_end_.back();
    phrases_[node.phrase].text = text_.substr(begin, end - begin);
  }

  std::string_view line_;
  const std::string& name_;
  size_t line_no_;
  size_t pos_ = 0;
  std::vector<Open> stack_;
  std::vector<SstPhrase> phrases_;
  std::string text_;
  std::vector<size_t> token_begin_, token_end_;  // byte spans of the tokens in text_
};

}  // namespace

std::vector<SstSentence> parse_sst_trees(const std::string& content, const std::string& name) {
  std::vector<SstSentence> sentences;
  size_t line_no = 0;
  size_t start = 0;
  while (start < content.size()) {
    size_t end = content.find('\n', start);
    if (end == std::string::npos) end = content.size();
    std::string_view line(content.data() + start, end - start);
    start = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.find_first_not_of(" \t") == std::string_view::npos) continue;
    sentences.push_back(LineParser(line, name, line_no).parse());
  }
  return sentences;
}

std::vector<SstSentence> read_sst_trees(const std::string& path) {
  return parse_sst_trees(read_file(path), path);
}

std::vector<std::string> read_sst_texts(const std::string& path) {
  std::vector<std::string> texts;
  for (auto& s : read_sst_trees(path)) texts.push_back(std::move(s.text));
  return texts;
}

int sst2_label(int fine_label) {
  if (fine_label < 0 || fine_label > 4)
    throw std::invalid_argument("SST fine label " + std::to_string(fine_label) +
                                " outside 0..4");
  if (fine_label == 2) return -1;
  return fine_label > 2 ? 1 : 0;
}

Sst2Phrases sst2_phrases(const std::vector<SstSentence>& sentences) {
  Sst2Phrases out;
  struct Seen {
    size_t index;
    bool conflicted;
  };
  std::unordered_map<std::string_view, Seen> seen;  // views into out.phrases, see reserve
  size_t nodes = 0;
  for (const auto& s : sentences) nodes += s.phrases.size();
  // Reserving up front keeps the std::string objects (and so the views' targets) in place.
  out.phrases.reserve(nodes);
  seen.reserve(nodes);
  for (const auto& s : sentences) {
    for (const auto& p : s.phrases) {
      const int label = sst2_label(p.fine_label);
      if (label < 0) continue;
      auto it = seen.find(p.text);
      if (it == seen.end()) {
        out.phrases.push_back(LabelledText{p.text, label});
        seen.emplace(out.phrases.back().text, Seen{out.phrases.size() - 1, false});
      } else if (out.phrases[it->second.index].label != label && !it->second.conflicted) {
        it->second.conflicted = true;
        ++out.conflicts;
      }
    }
  }
  out.phrases.shrink_to_fit();
  return out;
}

std::vector<LabelledText> sst2_sentences(const std::vector<SstSentence>& sentences) {
  std::vector<LabelledText> out;
  for (const auto& s : sentences) {
    const int label = sst2_label(s.fine_label);
    if (label >= 0) out.push_back(LabelledText{s.text, label});
  }
  return out;
}

Sst2 load_sst2(const std::string& dir) {
  Sst2 d;
  Sst2Phrases train = sst2_phrases(read_sst_trees(dir + "/train.txt"));
  d.train = std::move(train.phrases);
  d.train_conflicts = train.conflicts;
  d.dev = sst2_sentences(read_sst_trees(dir + "/dev.txt"));
  d.test = sst2_sentences(read_sst_trees(dir + "/test.txt"));
  return d;
}

}  // namespace floe::models
