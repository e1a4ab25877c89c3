"""Generate the small website snapshots the offline demo enriches (proposalflow/data/sites/).

    .venv/bin/python bench/make_site_snapshots.py            # rewrites proposalflow/data/sites/

For every valid row of proposalflow/data/sample_clients.csv: a fictional site of 3-5 pages (home,
about, services, contact, and customers for some), schema.org JSON-LD Organization data on most
home pages (not all: the extractor must cope without), OpenGraph, mailto:/tel: links, social
profile links. Output is deterministic (seeded by the domain), so re-running changes nothing.
`build_site()` is also what bench/enrich.py serves for its 200 synthetic clients.
"""

from __future__ import annotations

import csv
import html
import json
import random
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from proposalflow.clients.normalise import normalise_website  # noqa: E402

SITES = REPO / "proposalflow" / "data" / "sites"

# industry (as in the CSV, lowercased) → (schema.org type, services, target customers)
INDUSTRIES: dict[str, tuple[str, list[str], list[str]]] = {
    "logistics": ("Organization", ["Freight forwarding", "Warehousing", "Last-mile delivery", "Customs brokerage"],
                  ["Manufacturers", "E-commerce retailers"]),
    "healthcare": ("MedicalBusiness", ["Preventive check-ups", "Specialist consultations", "Diagnostics", "Telehealth"],
                   ["Families", "Employers"]),
    "manufacturing": ("Organization", ["Precision machining", "Sheet metal fabrication", "Assembly", "Prototyping"],
                      ["Automotive suppliers", "Aerospace firms"]),
    "real estate": ("RealEstateAgent", ["Residential sales", "Property valuation", "Rentals", "Relocation support"],
                    ["Home buyers", "Landlords"]),
    "legal services": ("LegalService", ["Commercial contracts", "Employment law", "Dispute resolution", "Property law"],
                       ["Small businesses", "Founders"]),
    "agriculture": ("Organization", ["Organic vegetables", "Farm shop", "Seasonal produce boxes"],
                    ["Households", "Restaurants"]),
    "retail": ("Store", ["In-store shopping", "Online shop", "Gift cards", "Repairs"], ["Outdoor enthusiasts", "Families"]),
    "marine services": ("Organization", ["Boat maintenance", "Hull cleaning", "Marine electronics"],
                        ["Boat owners", "Marinas"]),
    "interior design": ("ProfessionalService", ["Residential interiors", "Office fit-outs", "Colour consultations"],
                        ["Homeowners", "Hospitality venues"]),
    "software": ("Organization", ["Analytics platform", "Data engineering", "Dashboards"], ["Mid-market companies", "SaaS teams"]),
    "construction": ("HomeAndConstructionBusiness", ["Commercial construction", "Renovations", "Project management"],
                     ["Developers", "Public sector"]),
    "financial services": ("FinancialService", ["Retirement planning", "Investment advice", "Tax planning"],
                           ["Families", "Retirees"]),
    "food & beverage": ("FoodEstablishment", ["Wholesale supply", "Catering", "Retail products"], ["Restaurants", "Grocers"]),
    "aerospace": ("Organization", ["Inspection drones", "Mapping services", "Pilot training"], ["Utilities", "Surveyors"]),
    "senior care": ("MedicalBusiness", ["Assisted living", "Memory care", "Respite stays"], ["Seniors", "Families"]),
    "accounting": ("AccountingService", ["Bookkeeping", "Tax returns", "Payroll", "Advisory"], ["Small businesses", "Freelancers"]),
    "cybersecurity": ("ProfessionalService", ["Penetration testing", "Security audits", "Incident response"],
                      ["Government contractors", "Banks"]),
    "veterinary": ("VeterinaryCare", ["Wellness exams", "Vaccinations", "Surgery", "Dental care"], ["Pet owners"]),
    "fitness": ("ExerciseGym", ["Strength classes", "Personal training", "Nutrition coaching"], ["Adults", "Athletes"]),
    "renewable energy": ("HomeAndConstructionBusiness", ["Residential solar", "Battery storage", "EV chargers"],
                         ["Homeowners", "Farms"]),
    "education": ("EducationalOrganization", ["One-to-one tutoring", "Exam preparation", "Group classes"],
                  ["Students", "Parents"]),
    "events": ("ProfessionalService", ["Wedding planning", "Corporate events", "Venue sourcing"], ["Couples", "Companies"]),
    "landscaping": ("HomeAndConstructionBusiness", ["Garden design", "Lawn care", "Irrigation"], ["Homeowners", "HOAs"]),
    "it consulting": ("ProfessionalService", ["Cloud migration", "Managed Kubernetes", "Cost optimisation"],
                      ["Start-ups", "Mid-market companies"]),
    "furniture": ("FurnitureStore", ["Custom tables", "Restoration", "Office furniture"], ["Homeowners", "Offices"]),
    "hospitality": ("LodgingBusiness", ["Beachfront hotels", "Conference venues", "Wedding packages"],
                    ["Holidaymakers", "Business travellers"]),
    "leisure": ("SportsActivityLocation", ["Surf lessons", "Board rental", "Surf camps"], ["Beginners", "Families"]),
    "restaurants": ("Restaurant", ["Fine dining", "Private events", "Catering"], ["Diners", "Companies"]),
    "insurance": ("InsuranceAgency", ["Commercial insurance", "Home insurance", "Claims support"],
                  ["Small businesses", "Homeowners"]),
    "utilities": ("Organization", ["Water delivery", "Office water coolers", "Water testing"], ["Offices", "Households"]),
    "home healthcare": ("MedicalBusiness", ["Home nursing", "Physical therapy at home", "Companion care"],
                        ["Seniors", "Patients after surgery"]),
    "printing": ("ProfessionalService", ["Risograph printing", "Posters", "Packaging"], ["Artists", "Brands"]),
    "wellness": ("HealthAndBeautyBusiness", ["Massage", "Facials", "Day spa packages"], ["Adults", "Couples"]),
    "automotive": ("AutoRepair", ["Engine repair", "Brakes", "Inspections", "Tyres"], ["Drivers", "Fleets"]),
    "medical labs": ("MedicalBusiness", ["Blood tests", "Pathology", "Corporate screening"], ["Clinics", "Employers"]),
    "architecture": ("ProfessionalService", ["Residential architecture", "Adaptive reuse", "Planning permits"],
                     ["Homeowners", "Developers"]),
    "travel": ("TravelAgency", ["Tailor-made trips", "Honeymoons", "Group tours"], ["Couples", "Families"]),
    "home services": ("HomeAndConstructionBusiness", ["Pool cleaning", "Pool repairs", "Equipment installs"],
                      ["Homeowners", "Hotels"]),
    "robotics": ("Organization", ["Warehouse robots", "Robot fleet software", "Integration services"],
                 ["Warehouses", "Manufacturers"]),
    "physiotherapy": ("MedicalBusiness", ["Sports physiotherapy", "Rehabilitation", "Pilates"], ["Athletes", "Office workers"]),
}
GENERIC = ("Organization", ["Consulting", "Project delivery", "Support"], ["Businesses"])
COUNTRY_CODES = {"USA": "+1", "UK": "+44", "Ireland": "+353", "Australia": "+61", "Canada": "+1", "Germany": "+49",
                 "Portugal": "+351", "New Zealand": "+64", "Spain": "+34", "Singapore": "+65"}
CUSTOMER_NAMES = ["Harbor & Co", "Blue Fern Group", "Northgate Partners", "Kettle Creek Foods", "Aldermoor Trust",
                  "Sable Point Hotels", "Corvid Labs", "Maple Row Schools", "Tessellate Retail", "Brightwater Clinics"]
TECH = ["WordPress", "Shopify", "Squarespace", "Webflow"]


def build_site(company: dict, *, home_url: str, seed: str | None = None) -> dict[str, str]:
    """path → HTML for one company: {name, industry, city, country}."""
    rnd = random.Random(seed or home_url)
    name = company["name"]
    kind, services, audience = INDUSTRIES.get((company.get("industry") or "").lower(), GENERIC)
    services = services[: rnd.randint(3, len(services))]
    domain = home_url.split("://", 1)[1].split("/", 1)[0]
    city, country = company.get("city") or "", company.get("country") or ""
    founded = rnd.randint(1978, 2019)
    staff = rnd.choice([8, 12, 25, 40, 65, 120, 240])
    phone = f"{COUNTRY_CODES.get(country, '+1')} {rnd.randint(200, 999)} {rnd.randint(100, 999)} {rnd.randint(1000, 9999)}"
    email = rnd.choice(["info", "hello", "contact"]) + "@" + domain
    slug = domain.split(".")[0]
    socials = [f"https://www.linkedin.com/company/{slug}"] + rnd.sample(
        [f"https://www.instagram.com/{slug}", f"https://www.facebook.com/{slug}", f"https://x.com/{slug}"], 2)
    with_ld = rnd.random() < 0.85
    with_customers = rnd.random() < 0.4
    customers = rnd.sample(CUSTOMER_NAMES, 3)
    summary = f"{name} offers {services[0].lower()} and {services[1].lower()} for {audience[0].lower()} in {city or country}."
    pages = {"/": "Home", "/about": "About us", "/services": "Services", "/contact": "Contact"}
    if with_customers:
        pages["/customers"] = "Customers"
    nav = " ".join(f'<a href="{path}">{html.escape(label)}</a>' for path, label in pages.items())
    footer = (f"<footer><p>© {name}</p>" + " ".join(f'<a href="{s}">{s.split("/")[2]}</a>' for s in socials)
              + "</footer>")
    generator = rnd.choice(TECH)
    ld = {"@context": "https://schema.org", "@type": kind, "name": name, "url": home_url, "description": summary,
          "foundingDate": str(founded), "numberOfEmployees": {"@type": "QuantitativeValue", "value": staff},
          "address": {"@type": "PostalAddress", "addressLocality": city, "addressCountry": country},
          "telephone": phone, "email": email, "sameAs": socials}

    def page(title: str, body: str, description: str | None = None, head: str = "") -> str:
        meta = f'<meta name="description" content="{html.escape(description)}">' if description else ""
        return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>{meta}'
                f'<meta property="og:site_name" content="{html.escape(name)}">'
                f'<meta name="generator" content="{generator}">{head}</head>\n'
                f"<body><header><nav>{nav}</nav></header>\n<main>{body}</main>\n{footer}</body></html>\n")

    site = {
        "/": page(f"{name} | {company.get('industry') or 'Home'}",
                  f"<h1>{html.escape(name)}</h1><p>{html.escape(summary)}</p>"
                  f"<p>We work with {html.escape(audience[0].lower())}"
                  f"{' and ' + html.escape(audience[1].lower()) if len(audience) > 1 else ''} "
                  f"across {html.escape(city or country)} and beyond.</p>",
                  description=summary,
                  head=f'<script type="application/ld+json">{json.dumps(ld)}</script>' if with_ld else ""),
        "/about": page(f"About us | {name}",
                       f"<h1>About {html.escape(name)}</h1><p>Founded in {founded} in {html.escape(city)}, we are a team "
                       f"of {staff} people. Our clients are {html.escape(', '.join(a.lower() for a in audience))}.</p>"),
        "/services": page(f"Services | {name}",
                          "<h1>What we offer</h1>" + "".join(
                              f"<h2>{html.escape(s)}</h2><p>{html.escape(s)} delivered by our own team, "
                              f"with clear pricing and no surprises.</p>" for s in services)),
        "/contact": page(f"Contact | {name}",
                         f'<h1>Contact</h1><p>E-mail <a href="mailto:{email}">{email}</a> or call '
                         f'<a href="tel:{phone.replace(" ", "")}">{phone}</a>.</p>'
                         f"<p>{html.escape(city)}, {html.escape(country)}</p>"),
    }
    if with_customers:
        site["/customers"] = page(f"Customers | {name}", "<h1>Customers</h1>" + "".join(
            f"<h2>{c}</h2><p>A long-standing client since {rnd.randint(2012, 2023)}.</p>" for c in customers))
    return site


def sample_companies() -> list[dict]:
    rows = []
    with (REPO / "proposalflow" / "data" / "sample_clients.csv").open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if not row["Company Name"].strip() or "duplicate" in row["Company Name"] or "@" not in row["E-mail"]:
                continue
            url, domain = normalise_website(row["Website"])
            if not domain or " " in row["Website"] or "." not in domain:
                continue
            rows.append({"name": row["Company Name"].strip(), "home_url": url, "domain": domain,
                         "industry": row["Industry"], "city": row["City"], "country": row["Country"]})
    return rows


def main() -> None:
    manifest: dict[str, dict[str, str]] = {}
    for company in sample_companies():
        folder = SITES / company["domain"]
        folder.mkdir(parents=True, exist_ok=True)
        files = {}
        for path, text in build_site(company, home_url=company["home_url"]).items():
            filename = "index.html" if path == "/" else path.strip("/") + ".html"
            (folder / filename).write_text(text, encoding="utf-8")
            files[path] = f"{company['domain']}/{filename}"
        manifest[company["home_url"]] = files
    (SITES / "manifest.json").write_text(json.dumps(
        {"generated_by": "bench/make_site_snapshots.py", "sites": manifest}, indent=1, sort_keys=True) + "\n")
    print(f"{len(manifest)} sites, {sum(len(f) for f in manifest.values())} pages in {SITES}")


if __name__ == "__main__":
    main()
