namespace WinTok.Dashboard.Pages;

/// <summary>A page that says one thing: a refusal, a missing job, a wrong token.</summary>
public sealed record MessageView(string Heading, string Text, string? Command = null, string? BackHref = null);
