package tui

import (
	"fmt"
	"strings"

	"github.com/charmbracelet/lipgloss"

	"github.com/parleychat/parley/internal/client"
)

var (
	accent      = lipgloss.Color("63")
	dim         = lipgloss.Color("245")
	borderStyle = lipgloss.NewStyle().Border(lipgloss.RoundedBorder()).BorderForeground(dim)
	focusStyle  = borderStyle.BorderForeground(accent)
	titleStyle  = lipgloss.NewStyle().Bold(true)
	dimStyle    = lipgloss.NewStyle().Foreground(dim)
	unreadStyle = lipgloss.NewStyle().Bold(true)
	selStyle    = lipgloss.NewStyle().Foreground(accent).Bold(true)
	reqStyle    = lipgloss.NewStyle().Foreground(lipgloss.Color("214"))
	errStyle    = lipgloss.NewStyle().Foreground(lipgloss.Color("203"))
	readStyle   = lipgloss.NewStyle().Foreground(lipgloss.Color("39"))
)

// Sizes derived from the window: the list is a quarter of the width
// (18 to 32 columns), the chat the rest; one line at the bottom for
// status and help.
func (m *model) leftWidth() int { return min(max(m.width/4, 18), 32) }

func (m *model) bodyHeight() int { return max(m.height-1, 5) }

func (m *model) rightInnerWidth() int { return max(m.width-m.leftWidth()-2, 10) }

func (m *model) layout() {
	inner := m.bodyHeight() - 2
	w := m.rightInnerWidth()
	m.chat.Width = w
	m.chat.Height = max(inner-3, 1) // header, typing line, input line
	m.input.Width = max(w-len(m.input.Prompt)-1, 1)
	m.prompt.Width = max(m.width-len(m.prompt.Prompt)-1, 1)
}

// refreshChat renders the open conversation into the viewport, following
// the bottom if it was there (or if toBottom).
func (m *model) refreshChat(toBottom bool) {
	follow := toBottom || m.chat.AtBottom()
	w := m.rightInnerWidth()
	var b strings.Builder
	if m.open == "" {
		b.WriteString(dimStyle.Render("Press n to start a conversation."))
	} else if msgs := m.history[m.open]; len(msgs) == 0 {
		b.WriteString(dimStyle.Render(fmt.Sprintf("No messages with @%s yet.", m.open)))
	} else {
		wrap := lipgloss.NewStyle().Width(w)
		for i, msg := range msgs {
			if i > 0 {
				b.WriteByte('\n')
			}
			b.WriteString(wrap.Render(m.messageLine(msg)))
		}
	}
	m.chat.SetContent(b.String())
	if follow {
		m.chat.GotoBottom()
	}
}

func (m *model) messageLine(msg client.Message) string {
	t := msg.SentAt
	if t.IsZero() {
		t = msg.ReceivedAt
	}
	now := m.now()
	layout := "15:04"
	if t.Local().YearDay() != now.Local().YearDay() || t.Year() != now.Year() {
		layout = "Jan 2 15:04"
	}
	who := msg.From
	if msg.Outgoing {
		who = "you"
	}
	text := msg.Text
	if msg.Kind == client.KindDeleted {
		text = dimStyle.Render("(this message was deleted)")
	} else if !msg.EditedAt.IsZero() {
		text += " " + dimStyle.Render("(edited)")
	}
	for _, r := range msg.Reactions {
		text += " " + dimStyle.Render(r.Emoji+" "+r.From)
	}
	if q := msg.Quote; q != nil && msg.Kind != client.KindDeleted {
		text = dimStyle.Render("↪ "+q.From+": "+q.Snippet(40)) + " " + text
	}
	line := dimStyle.Render(t.Local().Format(layout)) + " " + titleStyle.Render(who) + ": " + text
	if msg.Outgoing {
		mark := StatusMark(msg.Status)
		switch msg.Status {
		case "read":
			mark = readStyle.Render(mark)
		case "failed":
			mark = errStyle.Render(mark)
		default:
			mark = dimStyle.Render(mark)
		}
		line += " " + mark
	}
	return line
}

func (m model) View() string {
	left := m.viewList()
	right := m.viewChat()
	body := lipgloss.JoinHorizontal(lipgloss.Top, left, right)
	return body + "\n" + m.viewStatus()
}

func (m *model) viewList() string {
	w := m.leftWidth() - 2
	h := m.bodyHeight() - 2
	list := m.list()
	lines := []string{titleStyle.Render("Conversations")}
	if len(list) == 0 {
		lines = append(lines, dimStyle.Render("none yet"))
	}
	// Scroll so the selected line stays visible.
	start := 0
	if rows := h - 1; rows > 0 && m.selected >= rows {
		start = m.selected - rows + 1
	}
	clip := lipgloss.NewStyle().MaxWidth(w)
	for i := start; i < len(list) && len(lines) < h; i++ {
		conv := list[i]
		name := conv.Peer
		style := lipgloss.NewStyle()
		prefix := "  "
		if i == m.selected {
			prefix = "▸ "
			style = selStyle
		} else if conv.Unread > 0 {
			style = unreadStyle
		}
		item := prefix + style.Render(name)
		if conv.Unread > 0 {
			item += unreadStyle.Render(fmt.Sprintf(" (%d)", conv.Unread))
		}
		if conv.Request {
			item += reqStyle.Render(" [request]")
		}
		if _, ok := m.typing[conv.Peer]; ok {
			item += dimStyle.Render(" …")
		}
		lines = append(lines, clip.Render(item))
	}
	style := borderStyle
	if m.focus == paneList && !m.prompting {
		style = focusStyle
	}
	return style.Width(w).Height(h).Render(strings.Join(lines, "\n"))
}

func (m *model) viewChat() string {
	w := m.rightInnerWidth()
	h := m.bodyHeight() - 2
	clip := lipgloss.NewStyle().MaxWidth(w)

	header := dimStyle.Render("No conversation open")
	if m.open != "" {
		header = titleStyle.Render("@" + m.open)
		if conv, ok := m.conv(m.open); ok && conv.Request {
			header += reqStyle.Render("  request: a accept · r reject · b block (in the list)")
		}
		if m.changed[m.open] {
			header += errStyle.Render("  ⚠ safety number changed")
		}
	}
	typing := ""
	if _, ok := m.typing[m.open]; ok && m.open != "" {
		typing = dimStyle.Render(m.open + " is typing…")
	}
	input := m.input.View()
	if m.open == "" {
		input = ""
	}
	content := strings.Join([]string{clip.Render(header), m.chat.View(), clip.Render(typing), clip.Render(input)}, "\n")
	style := borderStyle
	if m.focus == paneChat && !m.prompting {
		style = focusStyle
	}
	return style.Width(w).Height(h).MaxHeight(h + 2).Render(content)
}

func (m *model) viewStatus() string {
	clip := lipgloss.NewStyle().MaxWidth(m.width)
	switch {
	case m.prompting:
		return clip.Render(m.prompt.View())
	case m.call.state != "" && (m.status == "" || m.call.state == "incoming"):
		return clip.Render(m.callBanner())
	case m.status != "" && m.statusErr:
		return clip.Render(errStyle.Render(m.status))
	case m.status != "":
		return clip.Render(m.status)
	case m.focus == paneChat:
		return clip.Render(dimStyle.Render("Enter send · ↑/↓ scroll · Tab conversations · Ctrl-C quit"))
	}
	return clip.Render(dimStyle.Render("↑/↓ select · Tab/Enter chat · n new · c/v call · a/r/b accept/reject/block request · q quit"))
}
