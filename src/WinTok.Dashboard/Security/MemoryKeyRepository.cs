using System.Xml.Linq;
using Microsoft.AspNetCore.DataProtection.Repositories;

namespace WinTok.Dashboard.Security;

/// <summary>
/// Data-protection keys (they protect only antiforgery tokens here) kept in memory: the dashboard writes nothing to
/// disk, and a restart merely asks for a page reload before the next form post. Sessions survive restarts anyway:
/// their cookie is derived from the action token (<see cref="ActionToken"/>), not from these keys.
/// </summary>
internal sealed class MemoryKeyRepository : IXmlRepository
{
    private readonly List<XElement> keys = [];
    private readonly Lock gate = new();

    public IReadOnlyCollection<XElement> GetAllElements()
    {
        lock (gate) return keys.Select(k => new XElement(k)).ToList();
    }

    public void StoreElement(XElement element, string friendlyName)
    {
        lock (gate) keys.Add(new XElement(element));
    }
}
