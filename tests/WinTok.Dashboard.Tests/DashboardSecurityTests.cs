using System.Net;
using System.Net.Http.Headers;
using System.Text.RegularExpressions;
using Microsoft.Extensions.DependencyInjection;
using WinTok.Results;

namespace WinTok.Dashboard.Tests;

/// <summary>
/// Issue 14's security rules over HTTP against the real app: read-only without a token, 403 when actions are off, 401
/// without the right credential, the cookie sign-in with antiforgery, hostile strings shown as text, and the token never
/// in a log line.
/// </summary>
public sealed partial class DashboardSecurityTests
{
    private const string Token = "s3cret-action-token-7f1c";

    private static CancellationToken Cancel => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Cancel_WhenNoTokenIsConfigured_IsForbiddenAndChangesNothing()
    {
        await using var server = await DashboardServer.StartAsync(actionToken: null);

        var api = await server.Client.SendAsync(Post($"/api/jobs/{server.JobId}/cancel", bearer: "anything"), Cancel);
        var form = await server.Client.PostAsync($"/jobs/{server.JobId}/cancel", new FormUrlEncodedContent([]), Cancel);

        Assert.Equal(HttpStatusCode.Forbidden, api.StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, form.StatusCode);
        Assert.Contains("Dashboard__ActionToken", await api.Content.ReadAsStringAsync(Cancel), StringComparison.Ordinal);
        Assert.Equal(JobStatus.Running, await StatusAsync(server));
    }

    [Fact]
    public async Task Pages_WithoutCredentials_AreReadable()
    {
        await using var server = await DashboardServer.StartAsync(Token);

        foreach (var path in new[] { "/jobs", $"/jobs/{server.JobId}", "/workers", "/evaluations", "/api/jobs", $"/api/jobs/{server.JobId}", "/api/workers", "/metrics" })
        {
            var response = await server.Client.GetAsync(path, Cancel);
            Assert.True(response.StatusCode == HttpStatusCode.OK, $"{path}: {response.StatusCode}");
        }
    }

    [Fact]
    public async Task Cancel_WithoutCredentials_IsUnauthorizedAndChangesNothing()
    {
        await using var server = await DashboardServer.StartAsync(Token);

        var api = await server.Client.SendAsync(Post($"/api/jobs/{server.JobId}/cancel"), Cancel);
        var retry = await server.Client.SendAsync(Post($"/api/jobs/{server.JobId}/retry"), Cancel);
        var form = await server.Client.PostAsync($"/jobs/{server.JobId}/cancel", new FormUrlEncodedContent([]), Cancel);

        Assert.Equal(HttpStatusCode.Unauthorized, api.StatusCode);
        Assert.Equal("Bearer", api.Headers.WwwAuthenticate.Single().Scheme);
        Assert.Equal(HttpStatusCode.Unauthorized, retry.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, form.StatusCode);
        Assert.Equal(JobStatus.Running, await StatusAsync(server));
    }

    [Fact]
    public async Task Cancel_WithAWrongBearerToken_IsUnauthorized()
    {
        await using var server = await DashboardServer.StartAsync(Token);

        var response = await server.Client.SendAsync(Post($"/api/jobs/{server.JobId}/cancel", bearer: Token + "x"), Cancel);

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal(JobStatus.Running, await StatusAsync(server));
    }

    [Fact]
    public async Task Cancel_WithTheBearerToken_CancelsTheJob()
    {
        await using var server = await DashboardServer.StartAsync(Token);

        var response = await server.Client.SendAsync(Post($"/api/jobs/{server.JobId}/cancel", bearer: Token), Cancel);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(JobStatus.Cancelled, await StatusAsync(server));
    }

    [Fact]
    public async Task Retry_OnALocalJobsDatabase_IsRefusedWithTheCommandThatDoesIt()
    {
        await using var server = await DashboardServer.StartAsync(Token);
        await server.Client.SendAsync(Post($"/api/jobs/{server.JobId}/cancel", bearer: Token), Cancel);

        var response = await server.Client.SendAsync(Post($"/api/jobs/{server.JobId}/retry", bearer: Token), Cancel);

        Assert.Equal(HttpStatusCode.Conflict, response.StatusCode);
        Assert.Contains($"wintok jobs retry {server.JobId} --db ", await response.Content.ReadAsStringAsync(Cancel), StringComparison.Ordinal);
        Assert.Equal(JobStatus.Cancelled, await StatusAsync(server));
    }

    [Fact]
    public async Task SignIn_WithTheToken_GivesAnHttpOnlyCookieThatAllowsFormActions()
    {
        await using var server = await DashboardServer.StartAsync(Token);

        var signIn = await SignInAsync(server, Token);
        var cookie = Assert.Single(signIn.Headers.GetValues("Set-Cookie"), c => c.StartsWith("wintok-actions=", StringComparison.Ordinal));
        var page = await server.Client.GetStringAsync($"/jobs/{server.JobId}", Cancel);
        var cancel = await server.Client.PostAsync($"/jobs/{server.JobId}/cancel", Form(page), Cancel);

        Assert.Equal(HttpStatusCode.Redirect, signIn.StatusCode);
        Assert.Contains("httponly", cookie, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("samesite=strict", cookie, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain(Token, cookie, StringComparison.Ordinal);
        Assert.Contains("Cancel job", page, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.Redirect, cancel.StatusCode);
        Assert.Equal($"/jobs/{server.JobId}?notice=cancelled", cancel.Headers.Location?.OriginalString);
        Assert.Equal(JobStatus.Cancelled, await StatusAsync(server));
    }

    [Fact]
    public async Task FormAction_WithTheSessionCookieButNoAntiforgeryToken_IsRejected()
    {
        await using var server = await DashboardServer.StartAsync(Token);
        await SignInAsync(server, Token);

        var cancel = await server.Client.PostAsync($"/jobs/{server.JobId}/cancel", new FormUrlEncodedContent([]), Cancel);

        Assert.Equal(HttpStatusCode.BadRequest, cancel.StatusCode);
        Assert.Equal(JobStatus.Running, await StatusAsync(server));
    }

    [Fact]
    public async Task SignIn_WithAWrongToken_IsUnauthorizedAndSetsNoSessionCookie()
    {
        await using var server = await DashboardServer.StartAsync(Token);

        var signIn = await SignInAsync(server, "not-" + Token);

        Assert.Equal(HttpStatusCode.Unauthorized, signIn.StatusCode);
        Assert.False(signIn.Headers.TryGetValues("Set-Cookie", out var cookies) && cookies.Any(c => c.StartsWith("wintok-actions=", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task SignIn_WithAnOffSiteReturnAddress_StaysOnTheDashboard()
    {
        await using var server = await DashboardServer.StartAsync(Token);

        var signIn = await SignInAsync(server, Token, returnUrl: "//evil.example/phish");

        Assert.Equal("/jobs", signIn.Headers.Location?.OriginalString);
    }

    [Fact]
    public async Task JobPage_ShowsAHostileKeyReasonAndSpecAsText()
    {
        await using var server = await DashboardServer.StartAsync(Token);

        var response = await server.Client.GetAsync($"/jobs/{server.JobId}", Cancel);
        var html = await response.Content.ReadAsStringAsync(Cancel);
        var json = await server.Client.GetStringAsync($"/api/jobs/{server.JobId}", Cancel);

        Assert.Contains("&lt;img src=x onerror=alert(1)&gt;.jpg", html, StringComparison.Ordinal);
        Assert.Contains("&lt;script&gt;alert(&#x27;reason&#x27;)&lt;/script&gt; not an image", html, StringComparison.Ordinal);
        Assert.Contains("/data/&lt;b&gt;images&lt;/b&gt;", html, StringComparison.Ordinal);
        Assert.DoesNotContain("<img src=x", html, StringComparison.Ordinal);
        Assert.DoesNotContain("<script>alert", html, StringComparison.Ordinal);
        Assert.DoesNotContain("<b>images", html, StringComparison.Ordinal);
        Assert.Contains("script-src 'self'", response.Headers.GetValues("Content-Security-Policy").Single(), StringComparison.Ordinal);
        Assert.DoesNotContain("<img", json, StringComparison.Ordinal); // escaped in JSON too, and served as application/json
        using var parsed = System.Text.Json.JsonDocument.Parse(json);
        Assert.Equal(DashboardServer.HostileKey, parsed.RootElement.GetProperty("failures")[0].GetProperty("key").GetString());
    }

    [Fact]
    public async Task ActionToken_IsNeverLogged()
    {
        await using var server = await DashboardServer.StartAsync(Token);

        await SignInAsync(server, "wrong-" + Token);
        await SignInAsync(server, Token);
        await server.Client.SendAsync(Post($"/api/jobs/{server.JobId}/cancel", bearer: "wrong-" + Token), Cancel);
        await server.Client.SendAsync(Post($"/api/jobs/{server.JobId}/cancel", bearer: Token), Cancel);

        Assert.NotEmpty(server.Logs.Lines);
        Assert.Contains(server.Logs.Lines, line => line.Contains("[8020]", StringComparison.Ordinal)); // refusals are logged ...
        Assert.DoesNotContain(server.Logs.Lines, line => line.Contains(Token, StringComparison.Ordinal)); // ... without the token
    }

    private static HttpRequestMessage Post(string path, string? bearer = null)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new FormUrlEncodedContent([]) };
        if (bearer is not null) request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", bearer);
        return request;
    }

    /// <summary>The login form as a browser sends it: its antiforgery field (and cookie), the token, where to go next.</summary>
    private static async Task<HttpResponseMessage> SignInAsync(DashboardServer server, string token, string returnUrl = "/jobs")
    {
        var page = await server.Client.GetStringAsync("/login", Cancel);
        return await server.Client.PostAsync("/login", Form(page, ("token", token), ("returnUrl", returnUrl)), Cancel);
    }

    /// <summary>A form post carrying the antiforgery field of <paramref name="page"/>.</summary>
    private static FormUrlEncodedContent Form(string page, params (string Name, string Value)[] fields)
    {
        var match = AntiforgeryField().Match(page);
        Assert.True(match.Success, "the page has no antiforgery field");
        return new FormUrlEncodedContent([new(match.Groups[1].Value, match.Groups[2].Value), .. fields.Select(f => new KeyValuePair<string, string>(f.Name, f.Value))]);
    }

    private static async Task<string> StatusAsync(DashboardServer server) =>
        (await server.Services.GetRequiredService<ResultsRepository>().GetJobAsync(server.JobId, Cancel))!.Status;

    [GeneratedRegex("""<input type="hidden" name="(__RequestVerificationToken)" value="([^"]+)"[^>]*>""")]
    private static partial Regex AntiforgeryField();
}
