using System.Security.Cryptography;
using System.Text;

namespace WinTok.Dashboard.Security;

/// <summary>
/// Checks presented credentials against the configured action token without leaking it: comparisons are constant-time
/// over SHA-256 digests, and the session cookie holds an HMAC of the token, never the token itself, so a stolen cookie
/// does not reveal it and changing the token signs everyone out.
/// </summary>
internal sealed class ActionToken(string? token)
{
    /// <summary>The cookie a signed-in browser carries (HttpOnly, SameSite=Strict).</summary>
    public const string CookieName = "wintok-actions";

    private readonly byte[]? digest = string.IsNullOrEmpty(token) ? null : SHA256.HashData(Encoding.UTF8.GetBytes(token));

    public bool IsConfigured => digest is not null;

    /// <summary>Whether <paramref name="presented"/> is the token.</summary>
    public bool Matches(string? presented) =>
        digest is not null && presented is not null && CryptographicOperations.FixedTimeEquals(digest, SHA256.HashData(Encoding.UTF8.GetBytes(presented)));

    /// <summary>The session cookie's value: HMAC-SHA256 keyed by the token's digest over a fixed label.</summary>
    public string SessionValue() => digest is null
        ? throw new InvalidOperationException("No action token is configured")
        : Convert.ToHexStringLower(HMACSHA256.HashData(digest, "wintok-dashboard-session/1"u8));

    /// <summary>Whether <paramref name="cookie"/> is the session value of the current token.</summary>
    public bool IsSession(string? cookie) =>
        digest is not null && cookie is not null && CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(SessionValue()), Encoding.ASCII.GetBytes(cookie));

    /// <summary>The bearer token of an <c>Authorization</c> header, or null.</summary>
    public static string? Bearer(string? authorization) =>
        authorization is not null && authorization.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) ? authorization[7..].Trim() : null;
}
