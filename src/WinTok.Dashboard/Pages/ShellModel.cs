namespace WinTok.Dashboard.Pages;

/// <summary>What every page's frame needs: its title, the active tab, whether actions are possible, the form token.</summary>
/// <param name="Live">Whether the page refreshes itself (a running job, the workers).</param>
/// <param name="Antiforgery">The hidden form field (name, value) every POST form carries.</param>
public sealed record ShellModel(string Title, string Active, bool ActionsEnabled, bool SignedIn, int RefreshSeconds, bool Live,
    (string Name, string Value) Antiforgery);
